"""Delivering one-time passwords: SMTP (aiosmtplib), an HTTP SMS gateway (httpx), or the console.

Chosen per channel by ``VOTING_EMAIL_SENDER`` (``none``, ``console``, ``smtp``) and
``VOTING_SMS_SENDER`` (``none``, ``console``, ``webhook``). A sender gets the recipient (a
normalised address or E.164 number, used for this one delivery and never stored) and the code.
The console sender is for development: it logs the code with a masked recipient and keeps the
last messages in memory (``outbox``) so tests can read them.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import aiosmtplib
import httpx

from voting.identity.addresses import mask
from voting.settings import Settings

logger = logging.getLogger("voting.otp")
SEND_TIMEOUT = 10.0  # seconds for one SMTP session or webhook call
EMAIL_SUBJECT = "Mã xác thực bình chọn gương điển hình tiêu biểu"
EMAIL_BODY = (
    "Mã xác thực của bạn là: {code}\n\n"
    "Mã có hiệu lực trong {minutes} phút và chỉ dùng được một lần.\n"
    "Nếu bạn không yêu cầu mã này, hãy bỏ qua thư này.\n\n"
    "Địa chỉ email chỉ được dùng để gửi mã; hệ thống không lưu địa chỉ ở dạng đọc được.\n"
)


class SendError(Exception):
    """The message could not be handed to the mail server or SMS gateway."""


class Sender(Protocol):
    """Delivers a code to one recipient of its channel (``email`` or ``phone``)."""

    channel: str

    async def send(self, to: str, code: str, minutes: int) -> None:
        """Send ``code`` (valid ``minutes``) to ``to``; raise :class:`SendError` on failure."""
        ...


@dataclass(frozen=True)
class SentMessage:
    """One message the console sender delivered (kept in memory for development and tests)."""

    channel: str
    to: str
    code: str
    text: str


class ConsoleSender:
    """Logs the message (recipient masked) and keeps the last 1000 in ``outbox``."""

    def __init__(self, channel: str, template: str) -> None:
        self.channel = channel
        self.template = template
        self.outbox: deque[SentMessage] = deque(maxlen=1000)

    async def send(self, to: str, code: str, minutes: int) -> None:
        """Record and log the message; never fails."""
        text = self.template.format(code=code, minutes=minutes)
        self.outbox.append(SentMessage(self.channel, to, code, text))
        logger.info("console %s to %s: %s", self.channel, mask(self.channel, to), text)

    def last_code(self, to: str) -> str | None:
        """The code most recently sent to ``to`` (tests and development)."""
        for message in reversed(self.outbox):
            if message.to == to:
                return message.code
        return None


class SmtpSender:
    """Sends the email through ``VOTING_SMTP_*`` with aiosmtplib (one session per message)."""

    channel = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, code: str, minutes: int) -> None:
        """One SMTP session (STARTTLS, TLS or plain per ``VOTING_SMTP_TLS``, 10 s timeout);
        :class:`SendError` when the server refuses or cannot be reached."""
        s = self.settings
        message = EmailMessage()
        message["From"] = s.email.smtp_from
        message["To"] = to
        message["Subject"] = EMAIL_SUBJECT
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=s.email.smtp_from.rpartition("@")[2] or None)
        message.set_content(EMAIL_BODY.format(code=code, minutes=minutes))
        try:
            await aiosmtplib.send(
                message,
                hostname=s.email.smtp_host,
                port=s.email.smtp_port,
                username=s.email.smtp_username,
                password=s.email.smtp_password,
                use_tls=s.email.smtp_tls == "tls",
                start_tls=s.email.smtp_tls == "starttls",
                timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("smtp send to %s failed: %s", mask("email", to), type(exc).__name__)
            raise SendError("the mail server refused or could not be reached") from None


class WebhookSmsSender:
    """Posts ``{"to": "+84...", "message": "..."}`` (JSON) to ``VOTING_SMS_WEBHOOK_URL`` with
    the configured auth header; any answer but 2xx is a failure."""

    channel = "phone"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, code: str, minutes: int) -> None:
        """One POST (10 s timeout); :class:`SendError` on a transport error or a non-2xx."""
        s = self.settings
        headers = {}
        if s.sms.webhook_auth:
            headers[s.sms.webhook_auth_header] = s.sms.webhook_auth
        body = {"to": to, "message": s.sms.template.format(code=code, minutes=minutes)}
        try:
            async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as client:
                reply = await client.post(s.sms.webhook_url or "", json=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("sms send to %s failed: %s", mask("phone", to), type(exc).__name__)
            raise SendError("the SMS gateway could not be reached") from None
        if not reply.is_success:
            logger.warning(
                "sms send to %s: gateway answered %s", mask("phone", to), reply.status_code
            )
            raise SendError(f"the SMS gateway answered {reply.status_code}")


def make_senders(settings: Settings) -> dict[str, Sender]:
    """The configured sender of each channel (a channel set to ``none`` is absent)."""
    senders: dict[str, Sender] = {}
    if settings.email.sender == "console":
        senders["email"] = ConsoleSender("email", EMAIL_BODY)
    elif settings.email.sender == "smtp":
        senders["email"] = SmtpSender(settings)
    if settings.sms.sender == "console":
        senders["phone"] = ConsoleSender("phone", settings.sms.template)
    elif settings.sms.sender == "webhook":
        senders["phone"] = WebhookSmsSender(settings)
    return senders
