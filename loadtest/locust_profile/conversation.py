"""One simulated customer's booking conversation in its own thread, with its checks.

After every turn the customer checks that the reply is an AI message with content,
and that the thread's state holds exactly the human messages it managed to send:
a 200 whose turn is missing (or doubled) is reported as a Locust failure of type
CHECK. A double-text sends two turns at once; with `reject` the second may get a
409, which is expected and not a failure (that message is simply sent again).
A share of customers ask for approval (`config.configurable.booking_confirmation`):
their booking turn stops at an interrupt, which they approve (mostly) or reject, and
the thread must then be idle with the decision's outcome in its reply. Another share
send each turn as a background run (`POST /threads/{id}/runs`) and join it on a new
connection, so another worker may answer the join than ran the run.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment

from loadtest.common import dialogue as d
from loadtest.locust_profile.shape import Profile
from loadtest.locust_profile.steps import CHECK, TURN, StepRecorder

FLOWS = ("classic", "one_shot", "availability", "two_step")
FLOW_WEIGHTS = (4, 2, 2, 2)
APPROVE_SHARE = 0.85  # of the bookings that wait for approval; the rest are rejected
RESUME = f"{TURN} [resume]"
CREATE = "/threads/[id]/runs"
JOIN = "/threads/[id]/runs/[run_id]/join"


class CheckFailed(AssertionError):
    """A 200 response that breaks the conversation's contract."""


class ConversationAborted(RuntimeError):
    """A request failed; the thread's contents are unknown, so the conversation stops."""


class Conversation:
    def __init__(
        self,
        client: Any,
        environment: Environment,
        recorder: StepRecorder,
        profile: Profile,
        customer: d.Customer,
        rng: random.Random,
        sleep: Callable[[float], None] = gevent.sleep,
    ) -> None:
        self.client = client
        self.environment = environment
        self.recorder = recorder
        self.profile = profile
        self.customer = customer
        self.rng = rng
        self.sleep = sleep
        self.thread_id = f"lt-{uuid.uuid4()}"
        self.sent = 0  # human messages the server accepted (200)
        self.last_reply = ""
        self.approval = rng.random() < profile.approval_share
        self.declined = False  # a booking that waited for approval was rejected
        self.background = rng.random() < profile.background_share

    # --- plumbing --------------------------------------------------------------------
    def fail_check(self, name: str, detail: str) -> None:
        self.environment.events.request.fire(
            request_type=CHECK,
            name=name,
            response_time=0,
            response_length=0,
            exception=CheckFailed(f"{detail} (thread {self.thread_id})"),
            context={},
        )

    def read_json(self, method: str, path: str, name: str, body: Any = None) -> Any:
        """A read's JSON body, or None (a Locust failure) when it does not answer 200."""
        with self.client.request(method, path, json=body, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return None
            data = resp.json()
            resp.success()
        return data

    def think(self) -> None:
        low, high = self.profile.think_ms
        self.sleep(self.rng.uniform(low, high) / 1000)

    def post_turn(self, text: str, strategy: str, name: str) -> int:
        """One run; returns the status. A 409 is fine only for a `reject` double-text."""
        body: dict[str, Any] = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": text}]},
            "if_not_exists": "create",
            "multitask_strategy": strategy,
        }
        if self.approval:
            body["config"] = {"configurable": {"booking_confirmation": "interrupt"}}
        may_409 = strategy == "reject" and name != TURN
        if self.background and name == TURN:
            return self.background_turn(body)
        waiting = False
        with self.client.post(
            f"/threads/{self.thread_id}/runs/wait", json=body, name=name, catch_response=True
        ) as resp:
            status = resp.status_code
            if status == 200 and self.approval and "__interrupt__" in resp.json():
                waiting = True
                resp.success()
            elif status == 200:
                reply = d.last_ai_text(resp.json())
                if reply is None:
                    resp.failure("200 without an AI reply with content")
                else:
                    self.last_reply = reply
                    resp.success()
            elif status == 409 and may_409:
                resp.success()
            else:
                resp.failure(f"HTTP {status}: {resp.text[:200] if resp.text else ''}")
        if status == 200:
            self.sent += 1
        if waiting:
            self.decide()
        return status

    def background_turn(self, body: dict[str, Any]) -> int:
        """A turn as a background run: accepted at once, then joined for its values."""
        body = {**body, "multitask_strategy": "enqueue"}
        path = f"/threads/{self.thread_id}/runs"
        # The server closes this connection after answering, so the join goes out on a
        # new one, to whichever worker accepts it, most often not the one running the run.
        close = {"Connection": "close"}
        with self.client.post(
            path, json=body, name=CREATE, headers=close, catch_response=True
        ) as resp:
            if resp.status_code != 200 or resp.json().get("status") != "pending":
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200] if resp.text else ''}")
                raise ConversationAborted("background run not accepted")
            run_id = resp.json()["run_id"]
            resp.success()
        with self.client.get(f"{path}/{run_id}/join", name=JOIN, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200] if resp.text else ''}")
                raise ConversationAborted("join failed")
            values = resp.json()
            waiting = self.approval and "__interrupt__" in values
            reply = d.last_ai_text(values)
            if not waiting and reply is None:
                resp.failure("joined without an AI reply with content")
                raise ConversationAborted("join without a reply")
            resp.success()
        self.sent += 1
        if waiting:
            self.decide()
        else:
            self.last_reply = reply or ""
        return 200

    def decide(self) -> None:
        """Answer the approval the booking waits for: approve, or now and then reject."""
        approve = self.rng.random() < APPROVE_SHARE
        decision = (
            {"type": "approve"} if approve else {"type": "reject", "message": "changed plans"}
        )
        body = {
            "assistant_id": "agent",
            "command": {"resume": {"decisions": [decision]}},
            "config": {"configurable": {"booking_confirmation": "interrupt"}},
        }
        with self.client.post(
            f"/threads/{self.thread_id}/runs/wait", json=body, name=RESUME, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200] if resp.text else ''}")
                raise ConversationAborted("resume failed")
            reply = d.last_ai_text(resp.json())
            if reply is None or "__interrupt__" in resp.json():
                resp.failure("resume without an AI reply")
                raise ConversationAborted("resume failed")
            resp.success()
        self.last_reply = reply
        self.declined = not approve

    def check_state(self) -> None:
        """The thread holds exactly the human messages accepted so far."""
        if not self.profile.check_history:
            return
        state = self.read_json("GET", f"/threads/{self.thread_id}/state", "/threads/[id]/state")
        if state is None:
            raise ConversationAborted("state read failed")
        values = state.get("values")
        stored = d.human_count(values)
        if stored < self.sent:
            self.fail_check("lost turn", f"state has {stored} human messages, sent {self.sent}")
        elif stored > self.sent:
            self.fail_check(
                "duplicated turn", f"state has {stored} human messages, sent {self.sent}"
            )
        if reply := d.last_ai_text(values):
            self.last_reply = reply
        else:
            self.fail_check("state without reply", "last stored message is not an AI reply")

    def say(self, text: str) -> str:
        status = self.post_turn(text, "reject", TURN)
        if status != 200:
            raise ConversationAborted(f"turn failed with {status}")
        self.check_state()
        self.think()
        return self.last_reply

    def double_text(self, first: str, second: str) -> str:
        """Send `second` while `first` is still running; re-send it if rejected."""
        strategy = self.rng.choice(("reject", "enqueue"))
        leader = gevent.spawn(self.post_turn, first, "enqueue", f"{TURN} [double-text 1st]")
        self.sleep(0.005)
        status = self.post_turn(second, strategy, f"{TURN} [double-text {strategy}]")
        leader.join()
        if leader.value != 200 or status not in (200, 409):
            raise ConversationAborted("double-text failed")
        if status == 409 and strategy == "enqueue":
            raise ConversationAborted("enqueue answered 409")
        self.check_state()
        if status == 409:
            return self.say(second)
        self.think()
        return self.last_reply

    # --- the dialogue ----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except ConversationAborted:
            self.recorder.outcome("aborted")

    def _run(self) -> None:
        c = self.customer
        if self.rng.random() < 0.5:
            self.client.post(
                "/threads",
                json={"thread_id": self.thread_id, "metadata": {"source": "loadtest"}},
                name="/threads",
            )
        flow = self.rng.choices(FLOWS, FLOW_WEIGHTS)[0]
        # A second message would drop a pending approval: those customers wait.
        double = (
            not self.approval
            and not self.background
            and self.rng.random() < self.profile.double_text_share
        )
        if flow == "one_shot":
            reply = self.say(d.one_shot(c))
        else:
            if flow == "classic":
                self.say(d.greeting(c))
                first = d.slot_message(c)
            elif flow == "availability":
                self.say(d.availability_question(c))
                first = d.booking_request(c)
            else:
                first = d.booking_request(c)
            if double:
                reply = self.double_text(first, d.customer_message(c))
            else:
                self.say(first)
                reply = self.say(d.customer_message(c))
        self.finish(reply)

    def finish(self, reply: str) -> None:
        c = self.customer
        code = d.confirmation_code(reply)
        if self.declined:
            self.recorder.outcome("declined")
            if code is not None or not d.is_declined(reply):
                self.fail_check("rejected booking not declined", reply[:200])
            return
        if code is None:
            if d.is_taken(reply):
                self.recorder.outcome("taken")
            else:
                self.recorder.outcome("not booked")
                self.fail_check("booking not confirmed", reply[:200])
            return
        self.recorder.outcome("booked")
        roll = self.rng.random()
        if roll < 0.4:
            if d.is_cancelled(self.say(d.cancel_message(c, code))):
                self.recorder.outcome("cancelled")
            else:
                self.fail_check("cancel not confirmed", self.last_reply[:200])
        elif roll < 0.55:
            self.say(d.my_appointments(c))
        elif roll < 0.7:
            self.say(d.thanks(c))
        if self.rng.random() < self.profile.read_share:
            self.read_back()

    def read_back(self) -> None:
        """History and thread reads agree with what was sent."""
        history = self.read_json(
            "POST", f"/threads/{self.thread_id}/history", "/threads/[id]/history", {"limit": 5}
        )
        if history is None:
            return
        if not history:
            self.fail_check("empty history", "history returned no snapshot")
        elif self.profile.check_history and d.human_count(history[0]["values"]) != self.sent:
            self.fail_check("history disagrees", "latest snapshot's human messages != sent")
        if history and self.rng.random() < 0.5:
            self.read_past(history[-1])
        with self.client.get(
            f"/threads/{self.thread_id}", name="/threads/[id]", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
            elif resp.json().get("status") != "idle":
                resp.failure(f"thread status {resp.json().get('status')!r} after the last turn")
            else:
                resp.success()

    def read_past(self, snapshot: dict[str, Any]) -> None:
        """An older checkpoint reads back as the history showed it (time travel)."""
        checkpoint_id = snapshot["checkpoint"]["checkpoint_id"]
        past = self.read_json(
            "GET",
            f"/threads/{self.thread_id}/state/{checkpoint_id}",
            "/threads/[id]/state/[checkpoint_id]",
        )
        if past is None:
            return
        if past["checkpoint"]["checkpoint_id"] != checkpoint_id:
            self.fail_check("wrong checkpoint", f"asked {checkpoint_id}")
        elif d.human_count(past["values"]) != d.human_count(snapshot["values"]):
            self.fail_check("past disagrees", "an older checkpoint reads unlike its history entry")
