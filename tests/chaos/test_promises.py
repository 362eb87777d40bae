"""The chaos harness's judgement of what a client saw: pure functions over recorded answers."""

from chaos.promises import check_answers, check_outage
from chaos.report import Scenario
from chaos.traffic import Post, ReadyAnswer

DOWN, UP = 1000.0, 1020.0


def scenario_with(*posts: Post) -> Scenario:
    scenario = Scenario("C5", "PostgreSQL stopped 20s", "c5-", started=990.0)
    scenario.posts = list(posts)
    return scenario


def post(at: float, status: int = 202, seconds: float = 0.1, retry_after: str | None = None) -> Post:
    return Post(at, status, seconds, retry_after, None)


def test_it_calls_an_unanswered_request_a_500_and_a_bare_503_violations():
    # given
    scenario = scenario_with(post(995, 0, 15), post(996, 500), post(997, 503), post(998, 503, retry_after="5"), post(999))

    # when
    check_answers(scenario, scenario.posts)

    # then
    assert [v.promise for v in scenario.violations] == [
        "every request is answered, never with a 500", "every request is answered, never with a 500",
        "a 503 carries Retry-After"]


def test_it_holds_the_api_to_two_seconds_while_the_dependency_is_away_including_requests_begun_before():
    # given one request begun before the outage and answered in it, one quick refusal, one slow one after
    scenario = scenario_with(post(999, 202, 2.5), post(1005, 503, 0.5, "5"), post(1030, 202, 3.0))

    # when
    check_outage(scenario, "PostgreSQL", DOWN, UP, [])

    # then only the first is a slow answer during the outage
    [slow] = scenario.violations
    assert slow.promise == "the API answers within 2 s while PostgreSQL is away"


def test_it_allows_one_second_after_the_return_and_no_refusal_later():
    # given
    scenario = scenario_with(post(UP + 0.5, 503, 0.2, "5"), post(UP + 1.5, 503, 0.2, "5"))

    # when
    check_outage(scenario, "Redis", DOWN, UP, [])

    # then
    [late] = scenario.violations
    assert late.promise == "requests succeed from 1 s after Redis is back" and "1.5s after" in late.detail


def test_it_wants_readiness_within_a_second_and_not_ready_after_the_outage_s_first_second():
    # given
    ready = [ReadyAnswer(DOWN + 0.5, 200, 0.1), ReadyAnswer(DOWN + 2, 503, 1.4), ReadyAnswer(DOWN + 3, 200, 0.1),
             ReadyAnswer(DOWN + 4, 503, 0.2)]
    scenario = scenario_with()

    # when
    check_outage(scenario, "Redis", DOWN, UP, ready)

    # then
    assert [v.promise for v in scenario.violations] == [
        "/health/ready answers within 1 s while Redis is away", "/health/ready is not 200 while Redis is away"]
