"""The README's promises about what a client sees, checked against what the chaos harness observed. Each broken
promise is a violation; the limits are the README's (or, where it says "about", the bound the suite holds it to)."""

import statistics
from collections import Counter

from chaos.report import Scenario
from chaos.traffic import Post, ReadyAnswer

API_LIMIT_SECONDS = 2.0  # "with PostgreSQL or Redis away the API answers 503 with Retry-After within about 2 s"
READY_LIMIT_SECONDS = 1.0  # /health/ready, probed by load balancers with short timeouts, during an outage
BACK_GRACE_SECONDS = 1.0  # after a dependency is back, requests sent later than this must succeed
READY_NOTICE_SECONDS = 1.0  # readiness may still say 200 this long into an outage (a check begun before it)

ANSWERED = "every request is answered, never with a 500"
RETRY_AFTER = "a 503 carries Retry-After"
ACCEPT_OR_RETRY = "a valid request is accepted (202) or refused for now (503)"


def check_answers(scenario: Scenario, posts: list[Post]) -> None:
    """Whatever the fault, each request is answered: 202, or 503 with Retry-After."""
    for post in posts:
        when = f"sent {post.at - scenario.started:.1f}s into the scenario"
        if post.status == 0:
            scenario.violate(ANSWERED, f"no answer within {post.seconds:.1f}s, {when}")
        elif post.status >= 500 and post.status != 503:
            scenario.violate(ANSWERED, f"{post.status}, {when}")
        elif post.status == 503 and not post.retry_after:
            scenario.violate(RETRY_AFTER, f"503 without Retry-After, {when}")
        elif post.status not in (202, 503):
            scenario.violate(ACCEPT_OR_RETRY, f"{post.status}, {when}")


def check_outage(scenario: Scenario, what: str, down: float, up: float, ready: list[ReadyAnswer],
                 mending: float | None = None) -> None:
    """While `what` is away (from `down` until `up`, when it answers again): the API answers within 2 s and
    readiness within 1 s, and says not ready until it is being brought back (`mending`); from 1 s after it
    is back, every request succeeds."""
    mending = up if mending is None else mending
    posts = scenario.posts
    open_in_outage = [post for post in posts if post.at <= up and post.answered_at >= down]
    for post in open_in_outage:
        if post.status and post.seconds > API_LIMIT_SECONDS:  # no answer at all is a violation of its own
            scenario.violate(f"the API answers within {API_LIMIT_SECONDS:.0f} s while {what} is away",
                             f"{post.status or 'no answer'} after {post.seconds:.1f}s, sent {post.at - down:+.1f}s "
                             f"from the outage's start")
    in_outage = [answer for answer in ready if down <= answer.at <= up]
    for answer in in_outage:
        if answer.status == 0 or answer.seconds > READY_LIMIT_SECONDS:
            scenario.violate(f"/health/ready answers within {READY_LIMIT_SECONDS:.0f} s while {what} is away",
                             f"{answer.status or 'no answer'} after {answer.seconds:.2f}s, {answer.at - down:.1f}s "
                             f"into the outage")
        elif answer.status == 200 and down + READY_NOTICE_SECONDS <= answer.at and answer.at + answer.seconds < mending:
            scenario.violate(f"/health/ready is not 200 while {what} is away",
                             f"200 after {answer.seconds:.2f}s, {answer.at - down:.1f}s into the outage")
    after = [post for post in posts if post.at >= up + BACK_GRACE_SECONDS]
    for post in after:
        if post.status != 202:
            scenario.violate(f"requests succeed from {BACK_GRACE_SECONDS:.0f} s after {what} is back",
                             f"{post.status or 'no answer'} for a request sent {post.at - up:.1f}s after")

    refused_after = [post.at - up for post in posts if post.at > up and post.status != 202]
    scenario.notes.append(f"API while {what} was away ({up - down:.0f}s): {describe(open_in_outage)}")
    scenario.notes.append(f"API after: {describe([post for post in posts if post.at > up])}; last refusal "
                          f"{f'{max(refused_after):.1f}s' if refused_after else '-'} after {what} was back")
    codes = " ".join(f"{status or 'no answer'}:{n}" for status, n in sorted(Counter(a.status for a in in_outage).items()))
    times = [answer.seconds for answer in in_outage]
    scenario.notes.append(f"/health/ready while {what} was away: {codes or 'not polled'}"
                          + (f"; p50 {statistics.median(times):.2f}s max {max(times):.2f}s" if times else ""))


def describe(posts: list[Post]) -> str:
    if not posts:
        return "no requests"
    statuses = Counter(post.status for post in posts)
    times = [post.seconds for post in posts]
    codes = " ".join(f"{status or 'no answer'}:{n}" for status, n in sorted(statuses.items()))
    return f"{codes}; p50 {statistics.median(times):.2f}s max {max(times):.2f}s"
