"""A chunk's first attempts made together, by a real worker through the real SendGrid SDK to the simulator."""

from collections import Counter

from django.conf import settings

from delivery import tracking
from delivery.composing import UNSUBSCRIBE_TAG
from delivery.models import Delivery, DeliveryAttempt
from preferences.models import Device, Recipient
from tests.factories import make_templates
from tests.providers_stack import SG_PRIVATE_KEY, TWILIO_TOKEN
from tests.services import wait_for

PEOPLE = 30


def email_campaign(api, count: int = PEOPLE, category: str = "social") -> tuple[str, list[Recipient]]:
    make_templates()
    people = Recipient.objects.bulk_create([Recipient(external_id=f"b{n}", email=f"b{n}@example.com") for n in range(count)])
    Device.objects.filter(recipient__in=people).delete()
    response = api.post("/api/v1/campaigns", {
        "type": category, "template": "welcome", "variables": {"name": "all"}, "channels": ["email"],
        "audience": {"user_ids": [p.external_id for p in people]},
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"], people


def campaign_deliveries(campaign_id):
    return Delivery.objects.filter(notification__campaign_id=campaign_id).select_related("notification__recipient")


def test_a_campaigns_emails_go_out_in_one_request_each_person_with_their_own_link_and_receipts(api, providers, live_server):
    providers.configure_receipts(sendgrid_webhook_url=f"{live_server.url}/api/v1/webhooks/sendgrid",
                                 sendgrid_private_key_pem=SG_PRIVATE_KEY, twilio_auth_token=TWILIO_TOKEN)

    # when 30 people get the same social email (a category with one-click unsubscribe)
    campaign_id, people = email_campaign(api)

    # then SendGrid gets one request with a personalization per person
    wait_for(lambda: campaign_deliveries(campaign_id).filter(status__in=["sent", "delivered"]).count() == PEOPLE,
             30, message="every email sent")
    [request] = providers.requests("sendgrid")
    body = request["body"]
    deliveries = {d.notification.recipient.email: d for d in campaign_deliveries(campaign_id)}
    assert len(body["personalizations"]) == PEOPLE
    for personalization in body["personalizations"]:
        [to] = personalization["to"]
        delivery = deliveries[to["email"]]
        assert personalization["custom_args"]["herald_delivery_id"] == str(delivery.pk)
        assert personalization["subject"] == "Hi all"
        # each person's own unsubscribe link: in their List-Unsubscribe header and, by substitution, in the body
        link = personalization["headers"]["List-Unsubscribe"].strip("<>")
        assert personalization["substitutions"] == {UNSUBSCRIBE_TAG: link,
                                                     tracking.DELIVERY_TAG: tracking.delivery_token(delivery.pk)}
        assert link in delivery.content["body"]
        assert personalization["headers"]["Message-ID"] == f"<herald-{delivery.pk}@{settings.HERALD_EMAIL_DOMAIN}>"
    assert len({p["headers"]["List-Unsubscribe"] for p in body["personalizations"]}) == PEOPLE
    assert all(UNSUBSCRIBE_TAG in c["value"] for c in body["content"])
    # one attempt each, all answered by that request
    attempts = DeliveryAttempt.objects.filter(delivery__notification__campaign_id=campaign_id)
    assert Counter(attempts.values_list("delivery_id", "provider", "outcome")).most_common(1)[0][1] == 1
    assert attempts.count() == PEOPLE and set(attempts.values_list("outcome", flat=True)) == {"sent"}

    # and the receipts, one per person, find their own deliveries
    wait_for(lambda: campaign_deliveries(campaign_id).filter(status="delivered").count() == PEOPLE, 30,
             message="every email delivered")
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["notifications"]["sent"] == PEOPLE


def test_an_address_sendgrid_refuses_fails_alone_and_the_rest_of_its_batch_is_sent(api, providers):
    # given SendGrid refuses one address of the batch (the whole request is a 400 naming it)
    providers.add_fault("sendgrid", status=400, error="Does not contain a valid address.", match="b7@")

    # when 30 people get the same email
    campaign_id, people = email_campaign(api, category="transaction")

    # then the other 29 are sent, each on its own after the batch was refused, and the one address fails
    wait_for(lambda: campaign_deliveries(campaign_id).filter(status__in=["sent", "failed"]).count() == PEOPLE,
             30, message="every email settled")
    deliveries = {d.notification.recipient.external_id: d for d in campaign_deliveries(campaign_id)}
    refused = deliveries.pop("b7")
    assert (refused.status, refused.error_code) == ("failed", "http_400")
    assert {d.status for d in deliveries.values()} == {"sent"}
    sendgrid = providers.requests("sendgrid")
    accepted = Counter(r["recipient"] for r in sendgrid if r["status"] == 202)
    assert set(accepted) == {f"b{n}@example.com" for n in range(PEOPLE) if n != 7}
    assert set(accepted.values()) == {1}, "nobody was sent twice"
