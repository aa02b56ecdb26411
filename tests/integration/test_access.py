"""The broker's identities and the alternate-exchange policy, on a real RabbitMQ.

Each test deployment gets an events exchange of its own, so nothing here
touches the exchange a live MinIO publishes to.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from pydantic import SecretStr
from yarl import URL

from functions import app as functions_app
from runtime.adapters.amqp import Broker
from runtime.adapters.management import Management, Policy
from runtime.adapters.topology import exchanges, queue_arguments, unrouted_policy
from runtime.core.errors import ConfigError
from runtime.core.settings import Settings
from runtime.ops import access
from tests.servers import delete_queues, make_settings, require_rabbitmq

pytestmark = pytest.mark.integration


def _isolated() -> Settings:
    s = make_settings()
    return s.model_copy(
        update={
            "exchange": f"{s.queue_prefix}.events",
            "routing_key": f"{s.queue_prefix}.in",
            "amqp_runtime_password": SecretStr(uuid.uuid4().hex),
            "amqp_publisher_password": SecretStr(uuid.uuid4().hex),
        }
    )


def secret(value: SecretStr | None) -> str:
    assert value is not None
    return value.get_secret_value()


async def cleanup(settings: Settings, queues: list[str]) -> None:
    """Remove a test deployment's queues, exchanges, policy and users."""
    await delete_queues(settings, queues)
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        for exchange in exchanges(settings):
            ch = await conn.channel()
            with contextlib.suppress(Exception):
                await ch.exchange_delete(exchange.name)
    async with Management.connect(settings) as api:
        await api.delete_policy(unrouted_policy(settings).name)
    await access.remove(settings)


@pytest.fixture(scope="module")
async def deployment() -> AsyncIterator[Settings]:
    settings = _isolated()
    await require_rabbitmq(settings)
    async with Broker.connect(settings) as broker:
        await broker.declare(settings, functions_app)
    await access.provision(settings)
    yield settings
    await cleanup(settings, list(queue_arguments(settings, functions_app)))


def as_user(settings: Settings, user: str, password: str) -> str:
    url = URL(settings.amqp_url.get_secret_value())
    return str(url.with_user(user).with_password(password))


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    conn = await aio_pika.connect(url)
    async with conn:
        yield conn


async def refused(conn: aio_pika.abc.AbstractConnection, act: Callable[[Any], Any]) -> str:
    """Run ``act(channel)`` and return the broker's ACCESS_REFUSED text (fail if allowed)."""
    ch = await conn.channel(publisher_confirms=True)
    with pytest.raises(ChannelAccessRefused) as caught:
        await act(ch)
    return str(caught.value)


def _message() -> aio_pika.Message:
    return aio_pika.Message(b'{"Records": []}')


async def test_publisher_may_only_declare_and_publish_to_the_events_exchange(
    deployment: Settings,
) -> None:
    s = deployment
    url = as_user(s, s.queues.publisher_user, secret(s.amqp_publisher_password))
    async with connected(url) as conn:
        # What MinIO's target does before every event: redeclare, then publish.
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange(s.exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        await ex.publish(_message(), routing_key=s.routing_key)

        async def consume(ch: Any) -> None:
            q = await ch.declare_queue(s.queues.ingress, passive=True)
            await q.get(no_ack=False, fail=False)

        assert f"queue '{s.queues.ingress}'" in await refused(conn, consume)

        async def to_a_queue(ch: Any) -> None:
            await ch.default_exchange.publish(_message(), routing_key=s.queues.ingress)

        assert "amq.default" in await refused(conn, to_a_queue)

        async def to_another_exchange(ch: Any) -> None:
            other = aio_pika.Exchange(ch, "amq.direct", aio_pika.ExchangeType.DIRECT)
            await other.publish(_message(), routing_key=s.routing_key)

        assert "amq.direct" in await refused(conn, to_another_exchange)

        async def declare_a_queue(ch: Any) -> None:
            await ch.declare_queue(f"{s.queue_prefix}.mine", durable=True)

        assert "access to queue" in await refused(conn, declare_a_queue)


async def test_runtime_cannot_publish_events_or_touch_what_is_not_its(
    deployment: Settings,
) -> None:
    s = deployment
    url = as_user(s, s.queues.runtime_user, secret(s.amqp_runtime_password))
    async with connected(url) as conn:

        async def forge(ch: Any) -> None:
            ex = aio_pika.Exchange(ch, s.exchange, aio_pika.ExchangeType.DIRECT)
            sequencer = b'{"Records": [{"s3": {"object": {"sequencer": "FFFFFFFFFFFFFFFF"}}}]}'
            await ex.publish(aio_pika.Message(sequencer), routing_key=s.routing_key)

        assert f"exchange '{s.exchange}'" in await refused(conn, forge)

        async def redeclare_events(ch: Any) -> None:
            await ch.declare_exchange(s.exchange, aio_pika.ExchangeType.DIRECT, durable=True)

        assert f"exchange '{s.exchange}'" in await refused(conn, redeclare_events)

        other = f"other-{uuid.uuid4().hex[:8]}"

        async def declare_outside(ch: Any) -> None:
            await ch.declare_queue(other, durable=True)

        assert f"queue '{other}'" in await refused(conn, declare_outside)

        async def delete_outside(ch: Any) -> None:
            await ch.queue_delete(other)

        assert f"queue '{other}'" in await refused(conn, delete_outside)

    # What it may do: what the runtime does at start (passive exchanges, queues,
    # bindings), consume its queues, publish to them through the default exchange.
    runtime = s.model_copy(update={"amqp_url": SecretStr(url)})
    async with Broker.connect(runtime) as broker:
        await broker.declare(runtime, functions_app)
        await broker.publish(s.queues.ingress_dlq, b"mine")
        async with broker.channel() as ch:
            q = await ch.declare_queue(s.queues.ingress_dlq, passive=True)
            got = await q.get(no_ack=False, fail=False)
            assert got is not None
            assert got.body == b"mine"
            await got.ack()


async def test_the_policy_is_idempotent_and_on_exchanges_only(deployment: Settings) -> None:
    s = deployment
    again = await access.provision(s)
    assert again == {"policy_changed": False, "identities_changed": []}
    # A new password is a change; the old one stops working.
    moved = s.model_copy(update={"amqp_runtime_password": SecretStr(uuid.uuid4().hex)})
    assert (await access.provision(moved))["identities_changed"] == [s.queues.runtime_user]
    assert (await access.provision(s))["identities_changed"] == [s.queues.runtime_user]
    async with Management.connect(s) as api:
        mine = [p for p in await api.policies() if p["name"] == unrouted_policy(s).name]
        exchange = await api._call("GET", f"/exchanges/{api.vhost}/{s.exchange}")
    assert len(mine) == 1
    assert mine[0]["apply-to"] == "exchanges"
    assert mine[0]["definition"] == {"alternate-exchange": f"{s.exchange}.unrouted"}
    # The exchange itself keeps no arguments: MinIO's plain redeclare must still match.
    assert exchange["arguments"] == {}
    assert exchange["policy"] == unrouted_policy(s).name


async def test_init_without_passwords_leaves_the_identities_alone(deployment: Settings) -> None:
    bare = deployment.model_copy(
        update={"amqp_runtime_password": None, "amqp_publisher_password": None}
    )
    assert (await access.provision(bare))["identities_changed"] == []
    # The live runtime's password still works.
    url = as_user(
        deployment, deployment.queues.runtime_user, secret(deployment.amqp_runtime_password)
    )
    async with connected(url) as conn:
        assert not conn.is_closed


async def test_init_refuses_to_shadow_another_exchange_policy() -> None:
    s = _isolated()
    await require_rabbitmq(s)
    theirs = Policy(
        name=f"{s.queue_prefix}-theirs",
        pattern=f"^{s.queue_prefix}\\.",
        definition={"alternate-exchange": "elsewhere"},
        apply_to="all",
    )
    async with Management.connect(s) as api:
        await api.put_policy(theirs)
        try:
            with pytest.raises(ConfigError, match="already applies"):
                await access.ensure_policy(api, s)
            assert unrouted_policy(s).name not in {p["name"] for p in await api.policies()}
        finally:
            await api.delete_policy(theirs.name)
