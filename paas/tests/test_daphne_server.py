"""The lean daphne's input queue: what daphne and an ASGI app need of asyncio.Queue."""

import asyncio

from paas.daphne_server import Inbox


async def test_inbox_hands_over_messages_in_order_and_wakes_a_waiting_receive():
    inbox = Inbox()
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    assert [await inbox.get(), await inbox.get()] == [{"n": 1}, {"n": 2}]
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"n": 3})
    assert await asyncio.wait_for(waiting, 1) == {"n": 3}


async def test_a_cancelled_receive_loses_no_message():
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    inbox.put_nowait({"n": 1})
    assert await inbox.get() == {"n": 1}
