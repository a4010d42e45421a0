"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.stores.base import Store
from psycopg_pool import AsyncConnectionPool

from api.auth import TokenService
from api.container import Container
from api.controllers.accounts import AccountController
from api.controllers.appointments import AppointmentController, StaffAppointmentController
from api.controllers.audit import AuditController, FhirAuditEventController
from api.controllers.availability import AvailabilityController
from api.controllers.calendar import CalendarController, CalendarFeedController
from api.controllers.care import PatientCareController, ProxyController, StaffCareController
from api.controllers.connection_checks import ConnectionCheckController, run_connection_checks
from api.controllers.consents import PatientConsentController, StaffConsentController
from api.controllers.consultations import (
    ConsultationController,
    StaffConsultationController,
    consultation_signal,
)
from api.controllers.day_lists import DayListController, VisitsController
from api.controllers.documents import DocumentController, StaffDocumentController
from api.controllers.emergency import (
    EmergencyPageController,
    EmergencyShareController,
    ShareFeed,
    StaffEmergencyController,
    on_call_feed,
    share_positions,
)
from api.controllers.feature_flags import FeatureFlagController, MyFeaturesController
from api.controllers.fhir import FhirController
from api.controllers.fhir import handle_http as fhir_http_error
from api.controllers.forms import FormAdminController, FormController, StaffFormController
from api.controllers.health import HealthController
from api.controllers.integration import IntegrationController
from api.controllers.messages import (
    MessageFeed,
    MessageRoutingController,
    PatientMessageController,
    StaffMessageController,
    message_feed,
)
from api.controllers.notifications import NotificationAdminController, PushDeviceController
from api.controllers.passkeys import PasskeyController
from api.controllers.pharmacies import PharmacyController
from api.controllers.prescriptions import (
    MedicationImportController,
    PatientPrescriptionController,
    StaffPrescriptionController,
)
from api.controllers.profiles import ProfileController, StaffProfileController
from api.controllers.records import (
    PatientRecordController,
    RecordImportController,
    StaffRecordController,
)
from api.controllers.scheduling import DirectoryController, ScheduleAdminController
from api.controllers.second_factor import SecondFactorController
from api.controllers.uploads import UploadController
from api.controllers.verification import MyVerificationController, SignInCodeController
from api.controllers.waitlist import WaitlistController
from api.logs import request_id_middleware
from api.problems import EXCEPTION_HANDLERS, document_problems, handle_http
from api.validation import MAX_BODY_BYTES, CareRequest, refuse_nul_in_address
from commands.emergency import LivePositions
from webrtc.console_routes import ConsoleController
from webrtc.signaling import SignalRelay


def _route_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Errors raised before any controller is reached (no such route, method not allowed):
    under /fhir an OperationOutcome, as every FHIR answer, elsewhere a problem document."""
    if request.url.path.startswith("/fhir/"):
        return fhir_http_error(request, exc)
    return handle_http(request, exc)


def _stores(broker_url: str | None) -> dict[str, Store]:
    """Rate-limit counters live in Redis when there is one, so every API process shares them."""
    if broker_url is None:
        return {}
    from litestar.stores.redis import RedisStore

    return {"rate_limit": RedisStore.with_client(url=broker_url, namespace="carebridge-rate")}


def create_app(container: Container, token_secret: str,
               clock: Callable[[], datetime] | None = None) -> Litestar:
    settings = container.settings

    @asynccontextmanager
    async def read_pool(app: Litestar) -> AsyncIterator[None]:
        # The container the app serves now (tests give one app a fresh container each time).
        current: Container = app.state.container
        pool = AsyncConnectionPool(current.database.url, min_size=1,
                                   max_size=settings.db_pool_size + settings.db_pool_max_overflow,
                                   open=False, kwargs={"autocommit": True})
        await pool.open(wait=True, timeout=30)
        app.state.read_pool = pool
        try:
            yield
        finally:
            await pool.close()

    @asynccontextmanager
    async def signal_relay(app: Litestar) -> AsyncIterator[None]:
        # Consultation frames between this process's sockets and every other process's.
        relay = SignalRelay(app.state.container.database.url)
        await relay.start()
        app.state.signal_relay = relay
        try:
            yield
        finally:
            await relay.stop()

    @asynccontextmanager
    async def live_messages(app: Litestar) -> AsyncIterator[None]:
        # Changes to conversations, for this process's connected clients.
        feed = MessageFeed(app.state.container.database.url)
        await feed.start()
        app.state.message_feed = feed
        try:
            yield
        finally:
            await feed.stop()

    @asynccontextmanager
    async def live_positions(app: Litestar) -> AsyncIterator[None]:
        # Emergency shares' latest positions (never stored in PostgreSQL) and their viewers.
        current: Container = app.state.container
        positions = LivePositions(current.settings.emergency_position_seconds,
                                  current.settings.broker_url)
        await positions.start()
        feed = ShareFeed(current.database.url, positions)
        await feed.start()
        app.state.positions = positions
        try:
            yield
        finally:
            await feed.stop()
            await positions.stop()

    app = Litestar(
        route_handlers=[HealthController, AccountController, SecondFactorController, PasskeyController,
                        SignInCodeController, MyVerificationController,
                        PatientConsentController, StaffConsentController,
                        FeatureFlagController, MyFeaturesController,
                        ProfileController, StaffProfileController,
                        ScheduleAdminController, DirectoryController,
                        StaffCareController, ProxyController, PatientCareController,
                        AppointmentController, StaffAppointmentController,
                        AvailabilityController, CalendarController, CalendarFeedController,
                        VisitsController, DayListController, WaitlistController,
                        ConsultationController, StaffConsultationController,
                        consultation_signal, ConsoleController, ConnectionCheckController,
                        PatientPrescriptionController, StaffPrescriptionController,
                        PharmacyController, MedicationImportController,
                        DocumentController, StaffDocumentController, UploadController,
                        PatientRecordController, StaffRecordController, RecordImportController,
                        PatientMessageController, StaffMessageController,
                        MessageRoutingController, message_feed,
                        EmergencyShareController, StaffEmergencyController,
                        EmergencyPageController, share_positions, on_call_feed,
                        PushDeviceController, NotificationAdminController,
                        AuditController, FhirAuditEventController, FhirController,
                        IntegrationController,
                        FormController, FormAdminController, StaffFormController],
        lifespan=[read_pool, signal_relay, live_messages, live_positions,
                  run_connection_checks],
        exception_handlers={**EXCEPTION_HANDLERS, HTTPException: _route_error},
        request_class=CareRequest,
        before_request=refuse_nul_in_address,
        middleware=[
            request_id_middleware,
            RateLimitConfig(rate_limit=("minute", settings.rate_limit_per_minute),
                            exclude=["/health", "/schema"]).middleware,
        ],
        openapi_config=OpenAPIConfig(
            title="CareBridge API",
            version="0.1.0",
            description="The care-coordination core behind the clinic network's patient app. "
            "Errors are RFC 9457 problem documents. Send `Idempotency-Key` on every POST "
            "to make retries safe; send `CareBridge-Wait-For` with the `CareBridge-Position` "
            "a write returned to read your own writes.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}),
            security=[{"bearer": []}],
        ),
        cors_config=CORSConfig(allow_origins=[], allow_credentials=False),
        request_max_body_size=MAX_BODY_BYTES,
        stores=_stores(settings.broker_url),
        logging_config=None,
        debug=False,
    )
    document_problems(app.openapi_schema)
    app.state.container = container
    app.state.tokens = TokenService(token_secret,
                                    timedelta(minutes=settings.access_token_minutes))
    app.state.clock = clock
    return app
