"""Slack requests -> answers in Slack: the bolt app behind /slack/events and /slack/interactions.

    app_mention in a channel       answered in the message's thread
    message.im (a direct message)  answered in the message's thread
    /ask <question>                answered privately (response_url) with "Post to channel"
    Post to channel                posted in the channel; the private copy is deleted
    Helpful / Not helpful          stored as feedback (source "slack", the Slack user id)

A Slack thread is one conversation, keyed `slack:{team}:{channel}:{thread_ts}`: a follow-up in
the thread is answered with the thread's earlier exchanges as history. A /ask question starts
a conversation of its own.

Slack's rules, and where each is kept:

- Signatures: every request is checked against ASSISTANT_SLACK_SIGNING_SECRET before its body
  is even parsed (here, so that junk gets 401 rather than a parse error) and again by bolt's
  RequestVerification; a missing, wrong or stale (over 5 minutes) signature gets 401. The
  one exception is Slack's certificate probe (`ssl_check=1`), answered with an empty 200 as
  bolt does, without doing anything.
- The 3-second acknowledgement: every listener acknowledges at once; the answer is produced
  afterwards by a bolt lazy listener on a small thread pool, and posted with chat.postMessage
  (threads) or the response_url (/ask, buttons).
- Retries: an event's id is claimed in the conversation store before it is answered
  (`ConversationStore.claim_event`), so a redelivery (X-Slack-Retry-Num) is acknowledged and
  not answered again, even after a restart. An event whose answering failed halfway is not
  retried either: Slack only redelivers when the acknowledgement failed, not the answer.
- Bots: bolt drops the bot's own events; messages from other bots, and edits, deletions and
  other message subtypes, are acknowledged and ignored.

The Web API address comes from `api_url` (tests point it at a local fake Slack), else from the
setting `slack_api_url` when there is one, else Slack's own.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from slack_bolt import Ack, App, BoltRequest, Respond
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web import WebClient

from assistant.errors import AssistantError, ConfigError, NotFoundError
from assistant.records import Answer
from assistant.service.chat import MAX_HISTORY_TURNS
from assistant.service.context import ServiceContext, log_answer
from assistant.service.links import LinkSigner
from assistant.service.slack_format import (
    ACTION_HELPFUL,
    ACTION_NOT_HELPFUL,
    ACTION_POST,
    SlackMessage,
    answer_message,
    escape,
    feedback_note,
    notice_message,
    question_from_slack,
)

logger = logging.getLogger(__name__)

# Answering is CPU-bound (embedding, ranking); a few workers keep a burst of questions from
# starving the web routes. Acknowledgements never wait for them.
ANSWER_WORKERS = 4

# Message subtypes written by a person; every other subtype (bot_message, message_changed,
# message_deleted, channel_join ...) is not a question.
USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


def usage(examples: list[str]) -> str:
    """How to ask: the hint an empty command gets, with the first configured example question."""
    example = escape(examples[0]) if examples else "your question"
    return f"Ask me a question about the documents, for example `/ask {example}`, or mention me in a channel."


EMPTY_MENTION = "Ask me a question about the documents after mentioning me."
GONE = "This answer is no longer stored, so it cannot be posted or rated: ask again."
_ANY_COMMAND = re.compile(r"^/\S+$")


def create_router(context: ServiceContext, *, api_url: str | None = None) -> APIRouter:
    """Builds the Slack routes, POST /slack/events and POST /slack/interactions, for `context`.

    `api_url` is the Slack Web API's base address (default: the setting `slack_api_url` if
    the settings have it, else https://slack.com/api/).
    """
    bot = SlackBot(context, api_url=api_url or getattr(context.settings, "slack_api_url", None))
    router = APIRouter(tags=["slack"])
    # Both URLs reach the same bolt app, which tells events, commands and actions apart.
    for path in ("/slack/events", "/slack/interactions"):
        router.add_api_route(path, bot.handle, methods=["POST"], include_in_schema=False)
    return router


class SlackBot:
    """Turns signed Slack requests into acknowledgements now and answers posted afterwards."""

    def __init__(
        self,
        context: ServiceContext,
        *,
        api_url: str | None = None,
        workers: int = ANSWER_WORKERS,
    ) -> None:
        settings = context.settings
        if settings.slack_bot_token is None or settings.slack_signing_secret is None:
            raise ConfigError("the Slack bot needs ASSISTANT_SLACK_BOT_TOKEN and ASSISTANT_SLACK_SIGNING_SECRET")
        self.context = context
        self.public_url = settings.public_url
        # Source links open without an API key, by their signature: people in Slack have none.
        self.links = LinkSigner.from_settings(settings)
        secret = settings.slack_signing_secret.get_secret_value()
        self.verifier = SignatureVerifier(secret)
        client = WebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=(api_url or WebClient.BASE_URL).rstrip("/") + "/",
        )
        self.app = App(
            name="assistant",
            client=client,
            signing_secret=secret,
            # Acknowledgements run in the request's thread, answers on the executor: with
            # False, bolt would queue the acknowledgements behind slow answers.
            process_before_response=True,
            # No call to Slack at start-up: auth.test runs (once) on the first event.
            token_verification_enabled=False,
            listener_executor=ThreadPoolExecutor(workers, thread_name_prefix="slack-answer"),
        )
        self.app.event("app_mention")(ack=_ack, lazy=[self.answer_mention])
        # All message events are acknowledged (an unhandled one would get 404, and Slack
        # would retry it); only direct messages from people are answered.
        self.app.event("message")(ack=_ack, lazy=[self.answer_direct_message])
        # Any command name: the workspace admin may call it /ask, /docs or anything else.
        self.app.command(_ANY_COMMAND)(ack=self.acknowledge_command, lazy=[self.answer_command])
        self.app.action(ACTION_POST)(ack=_ack, lazy=[self.post_answer])
        self.app.action(ACTION_HELPFUL)(ack=_ack, lazy=[self.record_feedback])
        self.app.action(ACTION_NOT_HELPFUL)(ack=_ack, lazy=[self.record_feedback])

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Checks a request's signature, then lets bolt acknowledge it (answers come later)."""
        raw = await request.body()
        # Bolt's FaaS headers would make it run a lazy listener inside the request.
        headers = {k: v for k, v in request.headers.items() if not k.startswith("x-slack-bolt-")}
        try:
            body = raw.decode("utf-8")  # Slack sends UTF-8; anything else is not from Slack
        except UnicodeDecodeError:
            body = None
        if body is None or not self._signed(body, headers):
            if body is not None and _is_ssl_check(body):
                # Slack's certificate probe for command URLs: bolt answers it unsigned too.
                return Response(status_code=200)
            return JSONResponse({"detail": "invalid Slack request signature"}, status_code=401)
        try:
            bolt_request = BoltRequest(body=body, query=request.url.query, headers=dict(headers))
        except ValueError:  # malformed JSON, though signed: nothing Slack sends
            return JSONResponse({"detail": "the Slack request body is malformed"}, 400)
        bolt_response = await run_in_threadpool(self.app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    def _signed(self, body: str, headers: dict[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp.isdigit() or not signature:
            return False
        # Checks the HMAC of "v0:{timestamp}:{body}" and that the timestamp is within 5 min.
        return self.verifier.is_valid(body, timestamp, signature)

    # -- events ----------------------------------------------------------------------------

    def answer_mention(self, event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any) -> None:
        """Answers a channel message that mentions the bot, in the message's thread."""
        if event.get("bot_id") or event.get("subtype") not in USER_SUBTYPES:
            return
        self._answer_in_thread(event, body, client, context.bot_user_id, "slack_mention")

    def answer_direct_message(
        self, event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any
    ) -> None:
        """Answers a person's direct message to the bot, in the message's thread."""
        if (
            event.get("channel_type") != "im"
            or event.get("bot_id")
            or event.get("subtype") not in USER_SUBTYPES
            or not event.get("user")
        ):
            return
        self._answer_in_thread(event, body, client, context.bot_user_id, "slack_dm")

    def _answer_in_thread(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: WebClient,
        bot_user_id: str | None,
        route: str,
    ) -> None:
        event_id = body.get("event_id")
        if event_id and not self.context.conversations.claim_event(str(event_id)):
            logger.info("Slack event %s was delivered again: not answered twice", event_id)
            return
        channel = event["channel"]
        thread_ts = event.get("thread_ts") or event["ts"]
        team = body.get("team_id") or event.get("team") or ""
        question = question_from_slack(event.get("text") or "", bot_user_id)

        def post(message: SlackMessage) -> None:
            client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                **message.payload(),
            )

        def work() -> None:
            if not question:
                post(notice_message(EMPTY_MENTION, ":wave:"))
                return
            post(self._ask(route, question, key=f"slack:{team}:{channel}:{thread_ts}"))

        _run(work, post)

    # -- the slash command -----------------------------------------------------------------

    def acknowledge_command(self, ack: Ack, command: dict[str, Any]) -> None:
        """Acknowledges /ask at once: a usage hint without a question, else a short notice."""
        # Read as answer_command reads it: text with nothing visible gets the hint, not a
        # "Looking in the documents" that no answer would follow.
        question = question_from_slack(command.get("text") or "")
        if not question:
            ack(response_type="ephemeral", text=usage(self.context.settings.examples))
            return
        ack(
            response_type="ephemeral",
            text=f":hourglass_flowing_sand: Looking in the documents: _{escape(question[:300])}_",
        )

    def answer_command(self, command: dict[str, Any], respond: Respond) -> None:
        """Answers /ask privately, through the command's response_url."""
        question = question_from_slack(command.get("text") or "")
        if not question:
            return  # the acknowledgement showed how to use the command

        def reply(message: SlackMessage) -> None:
            _respond(respond, response_type="ephemeral", **message.payload())

        _run(lambda: reply(self._ask("slack_command", question, key=None, shareable=True)), reply)

    # -- buttons ---------------------------------------------------------------------------

    def post_answer(self, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        """Posts a private /ask answer in the channel, then deletes the private copy."""
        reply = _private_reply(respond)

        def work() -> None:
            try:
                exchange = self.context.conversations.exchange(str(action.get("value")))
            except NotFoundError:
                reply(notice_message(GONE))
                return
            stored = exchange.answer
            answer = Answer(
                question=exchange.question,
                text=stored.content,
                citations=stored.citations,
                abstained=stored.abstained,
            )
            message = answer_message(
                answer,
                answer_id=stored.answer_id,
                public_url=self.public_url,
                signer=self.links,
                question=exchange.question,
                asked_by=body["user"]["id"],
            )
            posted = _respond(
                respond,
                response_type="in_channel",
                replace_original=False,
                unfurl_links=False,
                unfurl_media=False,
                **message.payload(),
            )
            # An ephemeral message cannot become a channel message: post anew, then delete it.
            if posted:
                _respond(respond, delete_original=True)

        _run(work, reply)

    def record_feedback(self, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        """Stores a Helpful / Not helpful click as feedback and thanks the user privately."""
        reply = _private_reply(respond)
        rating: Literal["up", "down"] = "up" if action["action_id"] == ACTION_HELPFUL else "down"

        def work() -> None:
            try:
                self.context.conversations.add_feedback(
                    str(action.get("value")), rating, source="slack", user=body["user"]["id"]
                )
            except NotFoundError:
                reply(notice_message(GONE))
                return
            reply(feedback_note(rating))

        _run(work, reply)

    # -- answering -------------------------------------------------------------------------

    def _ask(self, route: str, question: str, *, key: str | None, shareable: bool = False) -> SlackMessage:
        """Answers a question (a follow-up in the conversation `key`), stores it, renders it.

        A `shareable` answer (the private /ask copy) repeats the question and has the "Post
        to channel" button.
        """
        started = time.perf_counter()
        conversations = self.context.conversations
        try:
            question = self.context.assistant.check_question(question)
            conversation_id = conversations.get_or_create(key) if key else None
            history = conversations.history(conversation_id) if conversation_id else []
            answer = self.context.assistant.ask(question, history[-MAX_HISTORY_TURNS:])
            saved = conversations.add_exchange(conversation_id, question, answer)
        except AssistantError as exc:
            # Its message is written for people: too long a question, no index yet ...
            logger.info("Slack question not answered: %s", exc)
            return notice_message(str(exc))
        log_answer(route, question, answer, started)
        return answer_message(
            answer,
            answer_id=saved.answer_id,
            public_url=self.public_url,
            signer=self.links,
            question=question if shareable else None,
            shareable=shareable,
        )


def _ack(ack: Ack) -> None:
    """Acknowledges at once; the lazy listeners do the work."""
    ack()


def _is_ssl_check(body: str) -> bool:
    return parse_qs(body).get("ssl_check") == ["1"]


def _private_reply(respond: Respond) -> Callable[[SlackMessage], None]:
    """Returns a function that shows a message to the clicking user only, as a new message."""

    def reply(message: SlackMessage) -> None:
        _respond(respond, response_type="ephemeral", replace_original=False, **message.payload())

    return reply


def _respond(respond: Respond, **message: Any) -> bool:
    """Sends a message to the response_url; logs and returns False when Slack refuses it."""
    try:
        sent = respond(**message)
    except OSError:
        logger.warning("the Slack response_url could not be reached", exc_info=True)
        return False
    if sent.status_code != 200:
        logger.warning("Slack refused a response_url message: %s %s", sent.status_code, sent.body)
        return False
    return True


def _run(work: Callable[[], None], apologise: Callable[[SlackMessage], None]) -> None:
    """Runs a lazy listener's work; an unexpected failure becomes an apology with a reference."""
    try:
        work()
    except SlackApiError as exc:
        logger.warning("Slack refused a message: %s", exc.response.get("error", exc))
    except OSError:
        logger.warning("the Slack Web API could not be reached", exc_info=True)
    except Exception:
        # Past the acknowledgement nobody else can tell the user: say so, log the details.
        reference = uuid.uuid4().hex[:12]
        logger.exception("Slack request failed (reference %s)", reference)
        try:
            apologise(notice_message(f"Something went wrong (reference {reference}); the server log has the details."))
        except (SlackApiError, OSError):
            logger.warning("the apology for reference %s could not be sent", reference)
