"""What the tour-booking handlers and the CDK code that deploys them agree on (course 5.2:
Booking service -> RabbitMQ / Kafka -> Notification service). Stdlib only: the CDK code
imports it as ``conveyor.lambdas.tours.tours.contract``."""

from __future__ import annotations

from typing import Final

RABBIT_PRODUCER: Final = "tours.rabbit_producer.handler"
RABBIT_CONSUMER: Final = "tours.rabbit_consumer.handler"
KAFKA_PRODUCER: Final = "tours.kafka_producer.handler"
KAFKA_CONSUMER: Final = "tours.kafka_consumer.handler"
DEFINITIONS: Final = "tours.definitions.handler"

# The booking event (JSON object), the course's payload.
BOOKING_ID: Final = "bookingId"
TOUR_ID: Final = "tourId"
USER_ID: Final = "userId"
BOOKING_DATE: Final = "bookingDate"
STATUS: Final = "status"
TOTAL_PRICE: Final = "totalPrice"
BOOKING_FIELDS: Final = (BOOKING_ID, TOUR_ID, USER_ID, BOOKING_DATE, STATUS, TOTAL_PRICE)
# Optional: the tier (exercise 1's bonus routes tour.booked.premium / tour.booked.standard),
# and the event type (default tour.booked; tour.cancelled for a cancellation).
TIER: Final = "tier"
TIERS: Final = ("premium", "standard")
EVENT_TYPE_FIELD: Final = "eventType"

# Event types = RabbitMQ routing keys = the Kafka header eventType.
TOUR_BOOKED: Final = "tour.booked"
TOUR_BOOKED_PREMIUM: Final = "tour.booked.premium"
TOUR_BOOKED_STANDARD: Final = "tour.booked.standard"
TOUR_CANCELLED: Final = "tour.cancelled"
EVENT_TYPES: Final = (TOUR_BOOKED, TOUR_BOOKED_PREMIUM, TOUR_BOOKED_STANDARD, TOUR_CANCELLED)

# RabbitMQ topology (declared at deploy by the definitions custom resource).
EXCHANGE: Final = "tour_events"
NOTIFICATION_QUEUE: Final = "notification_queue"
# The bindings of notification_queue: the course's own, and exercise 1's bonus wildcard.
NOTIFICATION_BINDINGS: Final = (TOUR_BOOKED, "tour.booked.*")
DEAD_LETTER_EXCHANGE: Final = "tour_events.dlx"
DEAD_LETTER_QUEUE: Final = "notification_queue.dlq"
# A quorum queue counts deliveries: after DELIVERY_LIMIT redeliveries a nacked message goes
# to the dead-letter exchange (Lambda's RabbitMQ mapping nacks a failed batch with requeue).
DELIVERY_LIMIT: Final = 3
VIRTUAL_HOST: Final = "/"

# Kafka topology.
TOPIC: Final = "tour_events"
PARTITIONS: Final = 3
CONSUMER_GROUP: Final = "notification_service_group"
HEADER_EVENT_TYPE: Final = "eventType"
HEADER_CORRELATION_ID: Final = "correlationId"

# The HTTP API: POST a booking; the correlation id comes from this header (or is made).
CORRELATION_HEADER: Final = "x-correlation-id"

# The notifications table (what the Notification service "sent"): partition key bookingId;
# ``sends`` counts notifications (1 when the consumer is idempotent), ``history`` lists the
# event types in the order the consumer saw them.
NOTIFICATIONS_KEY: Final = BOOKING_ID
SENDS: Final = "sends"
HISTORY: Final = "history"
MESSAGE: Final = "message"
LAST_CORRELATION_ID: Final = "correlationId"

# The course's Redis key lived 24 h: the idempotency records expire after as long.
IDEMPOTENCY_WINDOW_S: Final = 24 * 3600

# Environment variables.
BROKER_ENDPOINT: Final = "BROKER_ENDPOINT"  # amqps://host:5671 (Amazon MQ AmqpEndpoints[0])
BROKER_SECRET_ARN: Final = "BROKER_SECRET_ARN"  # noqa: S105 - a variable name: {"username", "password"}
CLUSTER_ARN: Final = "CLUSTER_ARN"  # MSK: bootstrap brokers from kafka:GetBootstrapBrokers
NOTIFICATIONS_TABLE: Final = "NOTIFICATIONS_TABLE"
PUBLISH_ATTEMPTS: Final = "PUBLISH_ATTEMPTS"
PUBLISH_BASE_DELAY_MS: Final = "PUBLISH_BASE_DELAY_MS"
ENVIRONMENT: Final = (
    BROKER_ENDPOINT,
    BROKER_SECRET_ARN,
    CLUSTER_ARN,
    NOTIFICATIONS_TABLE,
    PUBLISH_ATTEMPTS,
    PUBLISH_BASE_DELAY_MS,
)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {
    RABBIT_PRODUCER: "tours.config:RabbitProducerSettings",
    RABBIT_CONSUMER: "tours.config:ConsumerSettings",
    KAFKA_PRODUCER: "tours.config:KafkaProducerSettings",
    KAFKA_CONSUMER: "tours.config:ConsumerSettings",
    DEFINITIONS: "tours.config:DefinitionsSettings",
}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
BOOKINGS_PUBLISHED: Final = "BookingsPublished"
PUBLISH_RETRIES: Final = "PublishRetries"
PUBLISH_FAILURES: Final = "PublishFailures"
NOTIFICATIONS_SENT: Final = "NotificationsSent"
METRICS: Final = (BOOKINGS_PUBLISHED, PUBLISH_RETRIES, PUBLISH_FAILURES, NOTIFICATIONS_SENT)


def rabbitmq_definitions() -> dict[str, object]:
    """The course's topology as a RabbitMQ definitions document (what the custom resource
    declares): the durable topic exchange, the notification quorum queue with its delivery
    limit and dead-letter exchange, its two bindings, and the dead-letter queue."""
    vhost = VIRTUAL_HOST
    return {
        "exchanges": [
            {
                "name": EXCHANGE,
                "vhost": vhost,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
            {
                "name": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
        ],
        "queues": [
            {
                "name": NOTIFICATION_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {
                    "x-queue-type": "quorum",
                    "x-delivery-limit": DELIVERY_LIMIT,
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                },
            },
            {
                "name": DEAD_LETTER_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            },
        ],
        "bindings": [
            *(
                {
                    "source": EXCHANGE,
                    "vhost": vhost,
                    "destination": NOTIFICATION_QUEUE,
                    "destination_type": "queue",
                    "routing_key": key,
                    "arguments": {},
                }
                for key in NOTIFICATION_BINDINGS
            ),
            {
                "source": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "destination": DEAD_LETTER_QUEUE,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            },
        ],
    }
