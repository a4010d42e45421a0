"""The composition root: which contexts and projections exist, and how they are wired."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY

from api.database import Database, apply_sql_migrations, enable_app_login, protect_event_tables
from api.settings import Mode, Settings
from commands.appointments import AppointmentsApplication
from commands.audit_chain import signing_key
from commands.availability import Availability, PostgresBookings
from commands.calendar import CalendarApplication
from commands.care import CareAccessApplication
from commands.consents import ConsentsApplication
from commands.documents import DocumentsApplication
from commands.email_links import EmailLinks
from commands.emergency import EmergencyApplication, LinkSigner
from commands.eventstore import CareApplication, CareFactory, EventStoreSettings
from commands.feature_flags import FeatureFlagsApplication
from commands.forms import FormsApplication
from commands.identifiers import IdentifiersApplication
from commands.identity import IdentityApplication
from commands.messaging import MessagingApplication
from commands.outbox import Contacts, OutboxDispatcher, senders_from
from commands.passkeys import Passkeys, RelyingParty
from commands.pharmacy import PharmacyDirectory, PharmacyHandoffDispatcher, adapters_from
from commands.prescriptions import PrescriptionsApplication
from commands.profiles import ProfilesApplication
from commands.records import RecordsApplication
from commands.scheduling import SchedulingApplication
from commands.second_factor import SecondFactor
from commands.sessions import Sessions
from commands.sign_in import SignIn
from commands.telemedicine import TelemedicineApplication
from commands.uploads import Uploads, uploads_from
from commands.waitlist import WaitlistApplication
from commands.webhooks import WebhookDispatcher, Webhooks
from domain.consultations import Windows
from domain.profiles import CommunicationPreferences
from domain.schedule_types import StaticSchedule
from projections.analytics import CareAnalytics, analytics_key
from projections.appointment_views import AppointmentViews
from projections.audit_chain import AuditSealer
from projections.base import Projection
from projections.consents import ConsentViews
from projections.message_views import PatientThreads
from projections.prescription_analytics import PrescriptionAnalytics
from projections.process_managers import ensure_follower_tracking, followers_for
from projections.record_views import PatientRecords
from projections.runner import ProjectionRunner, ensure_tables
from projections.security_events import SecurityEvents

log = logging.getLogger("carebridge")

# In construction order: an application comes after those it is given (profiles reads identity).
APPLICATIONS: tuple[type[CareApplication], ...] = (IdentityApplication, ConsentsApplication,
                                                   ProfilesApplication, CareAccessApplication,
                                                   FeatureFlagsApplication, SchedulingApplication,
                                                   AppointmentsApplication, WaitlistApplication,
                                                   CalendarApplication, TelemedicineApplication,
                                                   PrescriptionsApplication, DocumentsApplication,
                                                   FormsApplication, RecordsApplication,
                                                   MessagingApplication, EmergencyApplication,
                                                   IdentifiersApplication)
PROJECTIONS: tuple[type[Projection], ...] = (ConsentViews, SecurityEvents, AppointmentViews,
                                             PrescriptionAnalytics, PatientRecords, PatientThreads)


def projections_for(encryption_key: str) -> list[Projection]:
    """Every projection, built. The care analytics stand for each patient by a keyed hash,
    under a key derived from the encryption key."""
    return [*(p() for p in PROJECTIONS), CareAnalytics(analytics_key(encryption_key))]


def password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=RFC_9106_LOW_MEMORY.parallelism,
    )


def migrate(settings: Settings, database: Database, encryption_key: str) -> list[str]:
    """Applies SQL migrations, creates and protects event tables, creates projection tables."""
    applied = apply_sql_migrations(database.owner_url)
    owner_store = EventStoreSettings(database.owner_url, encryption_key, pool_size=1,
                                     max_overflow=0, create_tables=True)
    built: dict[str, CareApplication] = {}
    for app_class in APPLICATIONS:
        built[app_class.name] = _construct(app_class, owner_store, settings, built)
    CareFactory.close_shared_pools(owner_store.scope)
    protect_event_tables(database.owner_url, [a.name for a in APPLICATIONS])
    if database.embedded_dir is not None:
        enable_app_login(database.owner_url)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        for projection in projections_for(encryption_key):
            ensure_tables(conn, projection)
        ensure_follower_tracking(conn)
    return applied


def _construct(app_class: type[CareApplication], store: EventStoreSettings,
               settings: Settings, built: dict[str, CareApplication]) -> CareApplication:
    if app_class is IdentityApplication:
        return IdentityApplication(store, password_hasher(settings))
    if app_class is ProfilesApplication:
        return ProfilesApplication(store, built["identity"])  # type: ignore[arg-type]
    if app_class is CareAccessApplication:
        return CareAccessApplication(store, built["identity"],  # type: ignore[arg-type]
                                     settings.break_glass_minutes)
    if app_class is SchedulingApplication:
        return SchedulingApplication(store, built["identity"])  # type: ignore[arg-type]
    if app_class is WaitlistApplication:
        return WaitlistApplication(store, settings.waitlist_offer_minutes)
    if app_class is AppointmentsApplication:
        # The scheduling context when it is wired; otherwise the schedule named by the
        # `static_schedule` setting (benchmarks, demos), or an empty one.
        return AppointmentsApplication(
            store, settings_schedule(settings) or built.get("scheduling"),  # type: ignore[arg-type]
            built["care"], built["feature_flags"],  # type: ignore[arg-type]
            settings.hold_minutes)
    if app_class is TelemedicineApplication:
        telemedicine = TelemedicineApplication(
            store, built["appointments"], built["consents"], built["care"],  # type: ignore[arg-type]
            built["feature_flags"], windows(settings))  # type: ignore[arg-type]
        built["appointments"].after_change.append(  # type: ignore[attr-defined]
            telemedicine.appointment_changed)
        return telemedicine
    if app_class is PrescriptionsApplication:
        appointments = built["appointments"]
        # The schedule booking uses at the moment of the call (tests and demos replace it).
        return PrescriptionsApplication(
            store, built["care"], built["consents"], built["feature_flags"],  # type: ignore[arg-type]
            lambda clinic_id: appointments.schedule.clinic(clinic_id),  # type: ignore[attr-defined]  # noqa: PLW0108
            settings.prescription_turnaround_days, settings.prescription_min_days_between_issues)
    if app_class is DocumentsApplication:
        appointments, profiles = built["appointments"], built["profiles"]
        return DocumentsApplication(
            store, built["care"], built["consents"], appointments,  # type: ignore[arg-type]
            profiles.preferred_clinic,  # type: ignore[attr-defined]
            lambda clinic_id: appointments.schedule.clinic(clinic_id))  # type: ignore[attr-defined]  # noqa: PLW0108
    if app_class is FormsApplication:
        return FormsApplication(store, built["care"], built["appointments"])  # type: ignore[arg-type]
    return _construct_care(app_class, store, settings, built) or app_class(store)


def _construct_care(app_class: type[CareApplication], store: EventStoreSettings,
                    settings: Settings, built: dict[str, CareApplication]) -> CareApplication | None:
    """The contexts that build on the others: records, messaging, emergency sharing."""
    if app_class is RecordsApplication:
        appointments = built["appointments"]
        return RecordsApplication(
            store, built["care"],  # type: ignore[arg-type]
            lambda clinic_id: appointments.schedule.clinic(clinic_id),  # type: ignore[attr-defined]  # noqa: PLW0108
            settings.result_release_delays)
    if app_class is MessagingApplication:
        # What a conversation may be about: each context's aggregates, by the context kind.
        contexts = {"appointment": built["appointments"],
                    "prescription_request": built["prescriptions"],
                    "record": built["records"], "document": built["documents"]}
        return MessagingApplication(
            store, built["care"], contexts,  # type: ignore[arg-type]
            built["profiles"].preferred_clinic,  # type: ignore[attr-defined]
            settings.message_response_hours, built["feature_flags"])
    if app_class is EmergencyApplication:
        return EmergencyApplication(
            store, built["care"], built["consents"], built["profiles"],  # type: ignore[arg-type]
            built["feature_flags"], timedelta(minutes=settings.emergency_share_minutes),
            timedelta(minutes=settings.emergency_share_max_minutes), settings.public_base_url,
            LinkSigner(store.encryption_key.encode()))
    return None


def windows(settings: Settings) -> Windows:
    return Windows(settings.consultation_join_minutes, settings.consultation_early_arrival_minutes,
                   settings.consultation_grace_minutes)


def settings_schedule(settings: Settings) -> Any:
    """The ScheduleSource the `static_schedule` setting names ("module:function"), if any."""
    if not settings.static_schedule:
        return None
    import importlib

    module, _, function = settings.static_schedule.partition(":")
    return getattr(importlib.import_module(module), function)()


@dataclass
class Container:
    """Everything a process needs: the applications and the projection runners."""

    settings: Settings
    database: Database
    encryption_key: str
    applications: dict[str, CareApplication] = field(default_factory=dict)
    runners: list[ProjectionRunner] = field(default_factory=list)
    followers: list[ProjectionRunner] = field(default_factory=list)  # process managers
    sessions: Sessions = field(init=False)
    second_factor: SecondFactor = field(init=False)
    passkeys: Passkeys = field(init=False)
    sign_in: SignIn = field(init=False)
    email_links: EmailLinks = field(init=False)
    outbox: OutboxDispatcher = field(init=False)
    pharmacies: PharmacyDirectory = field(init=False)
    pharmacy_handoffs: PharmacyHandoffDispatcher = field(init=False)
    webhooks: Webhooks = field(init=False)
    webhook_dispatcher: WebhookDispatcher = field(init=False)
    uploads: Uploads = field(init=False)
    availability: Availability = field(init=False)

    def __post_init__(self) -> None:
        self.store = EventStoreSettings(self.database.url, self.encryption_key,
                                        pool_size=self.settings.db_pool_size,
                                        max_overflow=self.settings.db_pool_max_overflow)
        for app_class in APPLICATIONS:
            self.applications[app_class.name] = _construct(app_class, self.store, self.settings,
                                                           self.applications)
        self.sessions = Sessions(self.identity,
                                 timedelta(minutes=self.settings.session_inactivity_minutes),
                                 timedelta(hours=self.settings.session_lifetime_hours))
        self.second_factor = SecondFactor(self.identity)
        self.passkeys = Passkeys(self.identity, RelyingParty(
            self.settings.webauthn_rp_id, self.settings.webauthn_rp_name,
            list(self.settings.webauthn_origins)))
        self.sign_in = SignIn(self.identity, self.sessions, self.second_factor, self.settings,
                              has_passkeys=self.passkeys.has_passkeys)
        self.email_links = EmailLinks(self.identity, self.sessions, self.settings)
        self.outbox = OutboxDispatcher(
            self.database.url,
            senders_from(self.settings, self.settings.data_dir, self.database.url),
            preferences=self.communication_preferences, contacts=self.contacts,
            lease=timedelta(seconds=self.settings.notification_queue_lease_seconds))
        self.pharmacies = PharmacyDirectory(
            self.identity.factory.datastore,  # type: ignore[attr-defined]
            allow_loopback_http=self.settings.mode is not Mode.PRODUCTION)
        self.prescriptions.pharmacies = self.pharmacies
        self.pharmacy_handoffs = PharmacyHandoffDispatcher(
            self.database.url, adapters_from(self.settings, self.settings.data_dir),
            self.prescriptions.handed_off, self.prescriptions.handoff_dead,
            max_attempts=self.settings.pharmacy_handoff_max_attempts)
        self.records.identifiers = self.identifiers  # imports match patients through it
        # Outbound webhooks to clinic systems (ids and statuses only), with their dead letters.
        self.webhooks = Webhooks(self.identity.factory.datastore,  # type: ignore[attr-defined]
                                 allow_loopback_http=self.settings.mode is not Mode.PRODUCTION)
        self.webhook_dispatcher = WebhookDispatcher(
            self.database.url, max_attempts=self.settings.webhook_max_attempts,
            loopback_only=self.settings.mode is not Mode.PRODUCTION)
        # The schedule booking uses: the one the `static_schedule` setting names (benchmarks,
        # demos), else the scheduling context; without either, no clinics and no free slots.
        schedule: Any = settings_schedule(self.settings) or self.applications.get("scheduling")
        self.availability = Availability(
            schedule if schedule is not None else StaticSchedule(),
            PostgresBookings(self.identity.factory.datastore))  # type: ignore[attr-defined]
        self.runners = [
            ProjectionRunner(p, self.applications, self.database.url,
                             self.settings.projection_batch_size)
            for p in projections_for(self.encryption_key)
        ]
        self.waitlist.connect(None,  # the schedule booking uses
                              self.applications.get("appointments"),  # type: ignore[arg-type]
                              self.identity, self.care)
        self.followers = followers_for(self.applications, self.waitlist, self.identity,
                                       self.settings, self.database.url)
        # The tamper-evident chain: seals every context's log (one leader, like the followers).
        self.followers.append(AuditSealer(
            self.applications, self.database.url,
            signing_key(self.settings.audit_signing_key, self.encryption_key),
            self.settings.audit_checkpoint_every))
        # Uploads become documents: the documents context checks who may upload what for whom
        # before an upload starts, claims it when it completes, and reads its stored file.
        self.uploads = uploads_from(self.settings,
                                    self.identity.factory.datastore,  # type: ignore[attr-defined]
                                    self.encryption_key)
        self.uploads.check_creation = self.documents.check_upload
        self.uploads.on_complete = lambda upload: self.documents.claim(upload, upload.at)
        self.documents.files = self.uploads.storage

    @property
    def calendar(self) -> CalendarApplication:
        return self.applications["calendar"]  # type: ignore[return-value]

    @property
    def scheduling(self) -> SchedulingApplication:
        return self.applications["scheduling"]  # type: ignore[return-value]

    @property
    def identity(self) -> IdentityApplication:
        return self.applications["identity"]  # type: ignore[return-value]


    @property
    def consents(self) -> ConsentsApplication:
        return self.applications["consents"]  # type: ignore[return-value]

    @property
    def feature_flags(self) -> FeatureFlagsApplication:
        return self.applications["feature_flags"]  # type: ignore[return-value]

    @property
    def profiles(self) -> ProfilesApplication:
        return self.applications["profiles"]  # type: ignore[return-value]

    @property
    def care(self) -> CareAccessApplication:
        return self.applications["care"]  # type: ignore[return-value]

    @property
    def appointments(self) -> AppointmentsApplication:
        return self.applications["appointments"]  # type: ignore[return-value]

    @property
    def telemedicine(self) -> TelemedicineApplication:
        return self.applications["telemedicine"]  # type: ignore[return-value]

    @property
    def prescriptions(self) -> PrescriptionsApplication:
        return self.applications["prescriptions"]  # type: ignore[return-value]

    @property
    def identifiers(self) -> IdentifiersApplication:
        return self.applications["identifiers"]  # type: ignore[return-value]

    @property
    def emergency(self) -> EmergencyApplication:
        return self.applications["emergency"]  # type: ignore[return-value]

    @property
    def messaging(self) -> MessagingApplication:
        return self.applications["messaging"]  # type: ignore[return-value]

    @property
    def records(self) -> RecordsApplication:
        return self.applications["records"]  # type: ignore[return-value]

    @property
    def documents(self) -> DocumentsApplication:
        return self.applications["documents"]  # type: ignore[return-value]

    @property
    def forms(self) -> FormsApplication:
        return self.applications["forms"]  # type: ignore[return-value]

    @property
    def waitlist(self) -> WaitlistApplication:
        return self.applications["waitlist"]  # type: ignore[return-value]

    def communication_preferences(self, account_id: UUID) -> CommunicationPreferences | None:
        """The outbox's `preferences` hook: how a patient wants to hear from the clinic."""
        return self.profiles._state(account_id).communication

    def contacts(self, account_id: UUID) -> Contacts:
        """The outbox's `contacts` hook: the account's email and the profile's mobile number."""
        account = self.identity.find_account(account_id)
        if account is None:
            return Contacts()
        return Contacts(account.email, self.profiles._state(account_id).contact.mobile_phone)

    def runner(self, name: str) -> ProjectionRunner:
        for runner in self.runners:
            if runner.projection.name == name:
                return runner
        raise KeyError(f"no projection named {name!r}; known: "
                       + ", ".join(r.projection.name for r in self.runners))

    def start_projections(self) -> None:
        for runner in self.runners:
            runner.start()

    def warm(self) -> None:
        """Loads what the first request would otherwise wait for (the availability search's
        mirror of the bookings)."""
        refresh = getattr(self.availability.bookings, "refresh", None)
        if refresh is not None:
            refresh(datetime.now(UTC))

    def start_followers(self) -> None:
        """Runs the process managers (waitlist offers, reminders) from this process."""
        for follower in self.followers:
            follower.start()

    def start_outbox(self) -> None:
        """Sends queued emails, texts, pharmacy handoffs and webhooks from this process
        (`serve` and `worker` do)."""
        self.outbox.start()
        self.pharmacy_handoffs.start()
        self.webhook_dispatcher.start()

    def close(self) -> None:
        runners = [*self.followers, *self.runners]
        for runner in runners:  # all at once: each notices within its poll interval
            runner.request_stop()
        self.outbox.stop()
        self.pharmacy_handoffs.stop()
        self.webhook_dispatcher.stop()
        for runner in runners:
            runner.stop()
        CareFactory.close_shared_pools(self.store.scope)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
