"""How the chaos harness reads the simulator's recordings."""

from chaos.report import deliveries_of, taken


def sendgrid(body: dict, status: int | None = 202, timed_out: bool = False) -> dict:
    return {"provider": "sendgrid", "method": "POST", "body": body, "status": status, "timed_out": timed_out}


def test_a_sendgrid_batch_names_every_delivery_in_its_personalizations():
    # given
    record = sendgrid({"personalizations": [{"custom_args": {"herald_delivery_id": "a"}},
                                            {"custom_args": {"herald_delivery_id": "b"}}]})

    # then
    assert deliveries_of(record) == ["a", "b"]


def test_a_single_sendgrid_send_and_a_twilio_send_name_their_delivery():
    # given
    email = sendgrid({"custom_args": {"herald_delivery_id": "a"}, "personalizations": [{"to": []}]})
    sms = {"provider": "twilio", "method": "POST", "status": 201, "timed_out": False,
           "body": {"StatusCallback": "http://h/api/v1/webhooks/twilio?delivery=b"}}
    lookup = {**sms, "method": "GET", "body": {"To": "+1"}}

    # then
    assert (deliveries_of(email), deliveries_of(sms), deliveries_of(lookup)) == (["a"], ["b"], [])


def test_a_request_the_provider_hung_on_counts_as_taken_and_a_refusal_does_not():
    assert taken(sendgrid({}, status=None, timed_out=True))
    assert taken(sendgrid({}, status=202, timed_out=True))  # answer lost
    assert not taken(sendgrid({}, status=503))
