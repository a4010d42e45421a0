"""Configuration: every setting, its default and its environment variable (prefix CAREBRIDGE_).

The README's configuration table is generated from this class (`carebridge settings`).
"""

from __future__ import annotations

import base64
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class MissingSetting(Exception):
    """Production refuses to start without a setting that has no safe default."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREBRIDGE_", extra="ignore")

    mode: Mode = Field(Mode.DEVELOPMENT, description="`production` refuses to start without "
                       "an encryption key, a token secret, a DATABASE_URL and an SMTP host.")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("CAREBRIDGE_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL 15+ URL used by the running service (the `carebridge_app` "
        "role or a member of it). Unset: an embedded PostgreSQL under the data directory.",
    )
    migration_database_url: str | None = Field(
        None, description="URL of the schema owner used by `carebridge migrate`; defaults to "
        "DATABASE_URL.")
    broker_url: str | None = Field(
        None,
        validation_alias=AliasChoices("CAREBRIDGE_BROKER_URL", "BROKER_URL"),
        description="Redis URL for dramatiq. Unset: an in-process broker and worker.",
    )
    data_dir: Path = Field(Path("var"), description="Where the embedded database and the "
                           "generated local keys live.")
    encryption_key: str | None = Field(
        None, description="Base64 AES key (16, 24 or 32 bytes) for event payloads at rest. "
        "Development generates and stores one under the data directory.")
    token_secret: str | None = Field(
        None, description="Secret (32+ characters) that signs access tokens. Development "
        "generates one.")
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, description="Port the API listens on.")
    access_token_minutes: int = Field(10, ge=1, le=10, description="Lifetime of an access "
                                      "token (at most 10 minutes).")
    session_inactivity_minutes: int = Field(15, ge=1, le=24 * 60, description="A session "
                                            "unused for this long ends (patients' default).")
    session_lifetime_hours: int = Field(12, ge=1, le=24 * 30, description="A session ends "
                                        "this long after sign-in, however active.")
    step_up_minutes: int = Field(10, ge=1, le=60, description="How long a second-factor "
                                 "verification on a session lets sensitive actions through "
                                 "(opening records, downloads, prescription requests, "
                                 "changing contact details).")
    webauthn_rp_id: str = Field("localhost", min_length=1, description="Passkeys: the "
                                "relying party id, the registrable domain the app's passkeys "
                                "belong to (for example `carebridge.example`). Changing it "
                                "makes every registered passkey unusable.")
    webauthn_rp_name: str = Field("CareBridge", min_length=1, description="Passkeys: the "
                                  "name a phone shows when it offers to save a passkey.")
    webauthn_origins: list[str] = Field(
        ["http://localhost:8000"], min_length=1, description="Passkeys: every origin a "
        "passkey may be used from, as a JSON list. Web pages use their https origin; the "
        "Android app uses its platform origin `android:apk-key-hash:<base64url SHA-256 of "
        "the signing certificate>`; the iOS app uses the https origin of its associated "
        "domain.")
    clinic_timezone: str = Field("Europe/London", description="Zone in which times are shown "
                                 "when a clinic has none of its own.")
    db_pool_size: int = Field(4, ge=1, description="Connections kept open per process.")
    db_pool_max_overflow: int = Field(16, ge=0, description="Extra connections under load.")
    api_threads: int = Field(40, ge=1, le=200, description="Threads per API process that run "
                             "its blocking handlers (commands, event store reads). More wait on "
                             "the database side by side; fewer contend less for the "
                             "interpreter.")
    read_your_writes_timeout_ms: int = Field(
        2000, ge=0, le=10000, description="How long a read that asks for a position waits "
        "for the projections to reach it.")
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per client "
                                       "address.")
    password_hash_time_cost: int = Field(3, ge=1, description="argon2id passes.")
    password_hash_memory_kib: int = Field(65536, ge=8, description="argon2id memory (KiB).")
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Write logs as one JSON object per line.")
    projection_batch_size: int = Field(1000, ge=1, description="Events applied per "
                                       "projection transaction.")
    worker_threads: int = Field(2, ge=1, description="Threads of the in-process or "
                                "`carebridge worker` dramatiq worker.")
    hold_minutes: int = Field(5, ge=1, le=60, description="How long a slot is held for a "
                              "patient while they confirm a booking; an unconfirmed hold "
                              "lapses by itself.")
    static_schedule: str | None = Field(
        None, description="Benchmarks and demos: `module:function` returning the schedule "
        "(a `StaticSchedule`) booking reads, instead of the scheduling context.")
    waitlist_offer_minutes: int = Field(30, ge=1, le=24 * 60, description="How long a "
                                        "patient on the waitlist has to take an offered "
                                        "appointment before it passes to the next patient.")
    reminder_hours: list[int] = Field([48, 2], description="Hours before an appointment at "
                                      "which the patient is reminded of it.")
    break_glass_minutes: int = Field(60, ge=5, le=24 * 60, description="How long emergency "
                                     "(break-glass) access to a patient outside the "
                                     "clinician's care team lasts once opened.")
    new_device_second_factor: bool = Field(
        True, description="Signing in on a device that is not remembered needs a second "
        "factor (an authenticator code, a passkey, or a code sent by email or SMS).")
    remember_device_days: int = Field(30, ge=0, le=365, description="How long a device the "
                                      "patient chose to remember skips the second factor (0: "
                                      "never remember).")
    one_time_code_minutes: int = Field(10, ge=1, le=60, description="How long a code sent by "
                                       "email or SMS works.")
    email_verification_hours: int = Field(24, ge=1, le=24 * 14, description="How long an "
                                          "email confirmation link works.")
    password_reset_minutes: int = Field(30, ge=5, le=24 * 60, description="How long a "
                                        "password reset link works.")
    app_link_base: str = Field("http://localhost:8000/app", description="Where links in "
                               "emails point: the app's deep-link base (the app posts the "
                               "token to the API).")
    mail_from: str = Field("CareBridge <no-reply@carebridge.localhost>", description="Sender "
                           "of emails.")
    smtp_host: str | None = Field(None, description="SMTP server for email. Unset: emails "
                                  "go to the local mail log (links and codes only).")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user, if the server needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with "
                                "STARTTLS.")
    mail_log_path: Path | None = Field(None, description="Local mail log (one JSON line per "
                                       "email: kind, account id and the link or code). "
                                       "Default: mail.log in the data directory.")
    sms_gateway_url: str | None = Field(None, description="HTTP endpoint of the SMS provider "
                                        "(receives JSON {to, text, reference}). Unset: texts "
                                        "go to the local SMS log.")
    sms_gateway_token: SecretStr | None = Field(None, description="Bearer token for the SMS "
                                                "gateway.")
    sms_log_path: Path | None = Field(None, description="Local SMS log. Default: sms.log in "
                                      "the data directory.")
    # ---- telemedicine ------------------------------------------------------------------------
    consultation_join_minutes: int = Field(10, ge=0, le=120, description="How long before a "
                                           "video appointment's start the patient and the "
                                           "clinician can join the call.")
    consultation_early_arrival_minutes: int = Field(
        60, ge=0, le=24 * 60, description="How long before the join window a patient may "
        "already enter the waiting room (told when the call opens).")
    consultation_grace_minutes: int = Field(30, ge=0, le=24 * 60, description="How long "
                                            "after the booked end a consultation stays open "
                                            "for joining and rejoining.")
    consultation_ticket_seconds: int = Field(60, ge=5, le=600, description="How long a "
                                             "WebSocket ticket for a consultation works (it "
                                             "works once).")
    websocket_origins: list[str] = Field(
        ["http://localhost:8000", "http://127.0.0.1:8000"], description="Origins allowed to "
        "open consultation WebSockets (the clinician console and web app), as a JSON list. "
        "Connections without an Origin header (the mobile app) are allowed; a browser always "
        "sends one. The API's own origin is always allowed.")
    stun_urls: list[str] = Field([], description="STUN servers given to the app, the "
                                 "console and the server's own peer, as a JSON list (e.g. "
                                 '["stun:turn.example.org:3478"]). Empty: none.')
    turn_urls: list[str] = Field([], description="TURN servers (coturn), as a JSON list, "
                                 'e.g. ["turn:turn.example.org:3478?transport=udp", '
                                 '"turns:turn.example.org:5349?transport=tcp"].')
    turn_shared_secret: SecretStr | None = Field(
        None, description="coturn's static-auth-secret (use-auth-secret): time-limited TURN "
        "credentials are derived from it; coturn and CareBridge must share it.")
    turn_credential_minutes: int = Field(120, ge=5, le=24 * 60, description="How long a TURN "
                                         "credential works.")
    connection_check_max_concurrent: int = Field(
        4, ge=1, le=64, description="Pre-call connection checks one API process runs at once "
        "(each is an echoing media peer; more wait with 429 and Retry-After).")
    connection_check_seconds: int = Field(60, ge=10, le=600, description="How long a pre-call "
                                          "check's server peer lives before it is closed.")
    # ---- repeat prescriptions ----------------------------------------------------------------
    prescription_turnaround_days: int = Field(
        2, ge=1, le=30, description="Working days (Monday to Friday, clinic time) the clinic "
        "promises for a repeat prescription request; a request still open after that is marked "
        "delayed and the patient is told.")
    prescription_min_days_between_issues: int = Field(
        21, ge=1, le=365, description="Default for medications that name none: how many days "
        "after an issue the same medication may be requested again.")
    # ---- secure messaging -------------------------------------------------------------------
    message_response_hours: dict[str, float] = Field(
        {}, description="Hours within which the clinic promises to answer a conversation, by "
        "category (appointment, prescription, lab_result, billing, care_follow_up, general); "
        "JSON, merged over the defaults 24, 48, 48, 120, 48 and 72. The patient is told the "
        "promise; a thread past it shows as overdue in the team's queue.")
    # ---- notification delivery ---------------------------------------------------------------
    notification_queue_lease_seconds: int = Field(
        300, ge=1, le=24 * 3600, description="A notification handed to the broker but not "
        "processed within this many seconds (a lost message, a worker that died) is handed "
        "over again. Delivery stays exactly-once: the outbox row is locked while it is sent.")
    fcm_endpoint: str = Field("https://fcm.googleapis.com", description="Firebase Cloud "
                              "Messaging HTTP v1 base URL (pushes to Android and web devices).")
    fcm_project_id: str | None = Field(None, description="Firebase project id. Unset: pushes "
                                       "to FCM devices go to the local push log.")
    fcm_access_token: SecretStr | None = Field(
        None, description="OAuth 2 bearer token for FCM (from the service account, renewed "
        "outside CareBridge).")
    apns_endpoint: str = Field("https://api.push.apple.com", description="APNs base URL "
                               "(`https://api.sandbox.push.apple.com` for development builds). "
                               "Spoken to over HTTP/2.")
    apns_topic: str = Field("org.carebridge.app", description="APNs topic: the iOS app's "
                            "bundle id.")
    apns_key_path: Path | None = Field(None, description="The APNs signing key (.p8, PEM). "
                                       "Unset: pushes to iOS devices go to the local push log.")
    apns_key_id: str | None = Field(None, description="Key id of the APNs signing key.")
    apns_team_id: str | None = Field(None, description="Apple developer team id.")
    push_log_path: Path | None = Field(None, description="Local push log (one JSON line per "
                                       "push: kind, account id and link). Default: push.log in "
                                       "the data directory.")
    # ---- emergency location sharing ----------------------------------------------------------
    emergency_share_minutes: int = Field(
        60, ge=5, le=720, description="How long an emergency location share lasts unless the "
        "patient extends it (each extension adds as much again).")
    emergency_share_max_minutes: int = Field(
        240, ge=5, le=1440, description="The longest an emergency share can last, extensions "
        "included; the emergency contact's link stops working then at the latest.")
    emergency_position_seconds: int = Field(
        300, ge=10, le=3600, description="How long the latest position of a share is kept (in "
        "memory, or Redis with a broker) without a new one. Positions are never stored in "
        "PostgreSQL.")
    public_base_url: str = Field(
        "http://localhost:8000", description="The address people outside the app reach this "
        "API at: the emergency contact's location page links to it.")
    # ---- audit ------------------------------------------------------------------------------
    audit_signing_key: str | None = Field(
        None, description="Base64 Ed25519 private key (32 random bytes, e.g. openssl rand -base64 "
        "32) that signs the audit checkpoints. Unset: derived from the encryption key (HKDF). "
        "Auditors verify with its public key (`carebridge audit public-key`).")
    audit_checkpoint_every: int = Field(1000, ge=1, le=100_000, description="Events per signed "
                                        "audit checkpoint; the sealer also signs one at the end "
                                        "of each round.")
    # ---- medical records --------------------------------------------------------------------
    result_release_delays: dict[str, float | None] = Field(
        {}, description="Hours after which a record is shown to the patient "
        "on its own, by kind (`lab_result`) or by test type (`lab_result:hba1c`); `null`: only "
        "when a clinician releases it. JSON, merged over the defaults: lab results 48 hours; "
        "HIV, histology, biopsy, cytology, genetic and PSA results by a clinician only; "
        "summaries, letters, vaccinations and care plans at once. Preliminary results are "
        "only ever released by a clinician.")
    # ---- pharmacy handoff (commands/pharmacy.py) -------------------------------------------
    pharmacy_drop_dir: Path | None = Field(
        None, description="Root of the file-drop pharmacy channel: a prescription for a "
        "pharmacy whose channel is `file` is written to `<root>/<the pharmacy's folder>/"
        "<handoff id>.json`. Default: `<data_dir>/pharmacy-drop`.")
    pharmacy_http_token: SecretStr | None = Field(
        None, description="Bearer token sent to pharmacies whose channel is `http`. Empty: "
        "no Authorization header.")
    pharmacy_handoff_max_attempts: int = Field(
        8, ge=1, le=50, description="Delivery attempts for a prescription to a pharmacy "
        "(with exponential backoff from 30 seconds) before it goes to the dead-letter view.")
    webhook_max_attempts: int = Field(
        8, ge=1, le=50, description="Delivery attempts for a webhook to a clinic system (with "
        "exponential backoff from 30 seconds, at most 6 hours apart) before it goes to the "
        "dead-letter view.")
    # ---- uploads and documents ---------------------------------------------------------------
    upload_storage: str = Field(
        "local", pattern="^(local|s3)$", description="Where uploaded files are kept, always "
        "encrypted (AES-256-GCM, a key derived from the encryption key): `local` (under "
        "`upload_dir`) or `s3` (an S3-compatible bucket).")
    upload_dir: Path | None = Field(None, description="Local file storage root. Default: "
                                    "`<data_dir>/files`.")
    upload_s3_bucket: str | None = Field(None, description="S3 bucket for uploaded files "
                                         "(with `upload_storage=s3`).")
    upload_s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, another provider). Unset: "
        "AWS S3.")
    upload_s3_region: str | None = Field(None, description="S3 region.")
    upload_s3_access_key_id: str | None = Field(
        None, description="S3 access key id. Unset: boto3's usual sources (environment, "
        "instance role).")
    upload_s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret "
                                                          "access key.")
    upload_max_pdf_mb: int = Field(20, ge=1, le=1024, description="Largest PDF a patient may "
                                   "upload, in MB (1 MB = 1,048,576 bytes).")
    upload_max_image_mb: int = Field(15, ge=1, le=1024, description="Largest photo (JPEG, "
                                     "PNG, HEIC) a patient may upload, in MB.")
    upload_expiry_hours: int = Field(24, ge=1, le=24 * 14, description="An unfinished upload "
                                     "untouched for this long is abandoned and deleted.")
    upload_scanner_command: list[str] = Field(
        [], description="Malware scanner run on every completed upload, as a JSON list, with "
        'the file on standard input (e.g. ["clamdscan", "--no-summary", "-"]); exit status '
        "0 clean, 1 infected (the file is deleted and the upload refused), anything else: "
        "try again later. Empty: no scan.")
    upload_scanner_timeout_seconds: int = Field(60, ge=1, le=600, description="How long the "
                                                "malware scanner may take for one file.")

    @field_validator("encryption_key", "token_secret", "database_url", "broker_url",
                     "migration_database_url", "smtp_host", "sms_gateway_url",
                     "audit_signing_key")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("encryption_key")
    @classmethod
    def _aes_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("must be base64 (for example: openssl rand -base64 32)") from None
        if len(raw) not in (16, 24, 32):
            raise ValueError("must decode to 16, 24 or 32 bytes (openssl rand -base64 32)")
        return value

    @field_validator("audit_signing_key")
    @classmethod
    def _ed25519_seed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("must be base64 (for example: openssl rand -base64 32)") from None
        if len(raw) != 32:
            raise ValueError("must decode to 32 bytes (openssl rand -base64 32)")
        return value

    @field_validator("message_response_hours")
    @classmethod
    def _response_hours(cls, value: dict[str, float]) -> dict[str, float]:
        from domain.messaging import Category

        for key, hours in value.items():
            if key not in {c.value for c in Category}:
                raise ValueError(f"{key!r} is not a category: use "
                                 + ", ".join(c.value for c in Category))
            if not 1 <= hours <= 24 * 30:
                raise ValueError(f"{key!r}: hours must be from 1 to 720")
        return value

    @field_validator("result_release_delays")
    @classmethod
    def _release_delays(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        from domain.records import Kind

        kinds = {k.value for k in Kind}
        for key, hours in value.items():
            kind, _, code = key.partition(":")
            if kind not in kinds or (":" in key and not code):
                raise ValueError(f"{key!r}: name a kind ({', '.join(sorted(kinds))}) or a test "
                                 "type as kind:code, e.g. lab_result:hba1c")
            if hours is not None and not 0 <= hours <= 24 * 365:
                raise ValueError(f"{key!r}: hours must be from 0 to 8760, or null")
        return {key.lower(): hours for key, hours in value.items()}

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def check_production(self) -> None:
        if self.mode is not Mode.PRODUCTION:
            return
        missing = [
            name
            for name, value in (
                ("CAREBRIDGE_ENCRYPTION_KEY", self.encryption_key),
                ("CAREBRIDGE_TOKEN_SECRET", self.token_secret),
                ("DATABASE_URL", self.database_url),
                ("CAREBRIDGE_SMTP_HOST", self.smtp_host),
            )
            if not value
        ]
        if missing:
            raise MissingSetting(
                "production mode needs " + ", ".join(missing) + "; refusing to start"
            )
        if self.turn_urls and self.turn_shared_secret is None:
            raise MissingSetting("CAREBRIDGE_TURN_URLS needs CAREBRIDGE_TURN_SHARED_SECRET "
                                 "(coturn's static-auth-secret)")
        if len(self.token_secret or "") < 32:
            raise MissingSetting("CAREBRIDGE_TOKEN_SECRET must be at least 32 characters")
