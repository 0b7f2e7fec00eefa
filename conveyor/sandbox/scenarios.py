"""Demo scenario of each topology: send the course's example events into a deployed sandbox,
deliver them, and check the expected outcome.

Each scenario returns :class:`Check` results; ``make deploy`` (local) exits non-zero when one
is not observed. Resources are found through the stacks' outputs, never by logical id.
Expected values come from what the topology promises (its outputs, its handlers' contracts,
the course's example), never from what the deployment happens to hold: a function or output
that is missing fails the scenario instead of shrinking what is expected.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from conveyor.lambdas.choreography.choreography import contract as choreography
from conveyor.lambdas.fulfillment.fulfillment import contract as fulfillment
from conveyor.lambdas.order_events.order_events import contract as order_events
from conveyor.lambdas.payments.payments import contract as payments
from conveyor.lambdas.telemetry.telemetry import contract as telemetry
from conveyor.lambdas.tours.tours import contract as tours
from conveyor.sandbox.model import REGION, DeployedStack, Deployment
from conveyor.sandbox.sends import message_attributes


@dataclass(frozen=True)
class Check:
    name: str
    expected: str
    observed: str
    ok: bool


class Scenario:
    """A topology's demo: ``run`` sends, pumps and checks."""

    topology = ""
    description = ""

    def __init__(
        self,
        deployment: Deployment,
        runtime: Any,
        session: boto3.session.Session,
        endpoint_url: str | None = None,
    ) -> None:
        self.deployment = deployment
        self.runtime = runtime
        self.session = session
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    @property
    def stack(self) -> DeployedStack:
        return stack_for(self.deployment, self.topology)

    def output(self, name: str) -> str:
        return self.stack.outputs[name]

    def run(self) -> list[Check]:  # pragma: no cover - overridden
        raise NotImplementedError

    def send(self, event: dict[str, Any]) -> str | None:
        """Send a given event into the topology's entry point (shape: see ``EVENT_SHAPES``);
        what it answered, if anything worth printing."""
        raise NotImplementedError  # pragma: no cover - overridden


TOPOLOGY_METADATA_KEY = "conveyor:topology"  # written by conveyor.topologies.build


def topology_of(template: dict[str, Any]) -> str | None:
    """The project topology a template is (its ``Metadata["conveyor:topology"]``), or None:
    a user's stack never gets a demo, whatever its name."""
    value = (template.get("Metadata") or {}).get(TOPOLOGY_METADATA_KEY)
    return value if isinstance(value, str) else None


def stack_for(deployment: Deployment, topology: str) -> DeployedStack:
    """The project's stack of ``topology`` (by its template metadata, not its name)."""
    for stack in deployment.stacks.values():
        if topology_of(stack.template) == topology:
            return stack
    raise KeyError(f"no {topology} stack in the deployment ({', '.join(deployment.stacks)})")


def check(name: str, expected: Any, observed: Any) -> Check:
    return Check(name, str(expected), str(observed), expected == observed)


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


class ImagePipeline(Scenario):
    topology = "ImagePipeline"
    description = (
        "upload a 1600×900 JPEG and a text file named .jpg; expect thumbnails for the image only"
    )

    def run(self) -> list[Check]:
        from PIL import Image

        s3 = self.client("s3")
        uploads, processed = self.output("UploadBucketName"), self.output("ProcessedBucketName")
        image = io.BytesIO()
        Image.new("RGB", (1600, 900), (200, 120, 40)).save(image, "JPEG")
        s3.put_object(Bucket=uploads, Key="demo/photo one.jpg", Body=image.getvalue())
        s3.put_object(Bucket=uploads, Key="demo/not-an-image.jpg", Body=b"hello")
        self.runtime.pump()
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=processed).get("Contents", []))
        sizes = [int(size) for size in self.output("ThumbnailSizes").split(",")]
        expected = sorted(f"thumbnails/{size}/demo/photo one.jpg" for size in sizes)
        checks = [check("thumbnails written for the image only", expected, keys)]
        if keys == expected:
            smallest = min(sizes)
            key = f"thumbnails/{smallest}/demo/photo one.jpg"
            body = s3.get_object(Bucket=processed, Key=key)["Body"].read()
            with Image.open(io.BytesIO(body)) as thumb:
                width, height = thumb.size
            checks.append(
                check(
                    "aspect ratio kept", (smallest, round(smallest * 900 / 1600)), (width, height)
                )
            )
        sqs = self.client("sqs")
        checks.append(
            check(
                "dead-letter queue empty", 0, _queue_depth(sqs, self.output("DeadLetterQueueUrl"))
            )
        )
        return checks

    def send(self, event: dict[str, Any]) -> None:
        body = Path(event["file"]).read_bytes()
        self.client("s3").put_object(
            Bucket=self.output("UploadBucketName"), Key=event["key"], Body=body
        )


class OrderEvents(Scenario):
    topology = "OrderEvents"
    description = (
        "publish OrderPlaced (total 150) and an invoice event; expect each subscriber's share"
    )

    def run(self) -> list[Check]:
        sns = self.client("sns")
        topic = self.output("TopicArn")
        order = {
            "eventType": "OrderPlaced",
            "version": "1.0",
            "eventId": "e-1",
            "occurredAt": "2026-11-21T10:00:00Z",
            "order": {
                "orderId": "o-demo",
                "customerId": "c-demo",
                "total": 150.0,
                "currency": "EUR",
                "items": [{"sku": "BOOK", "quantity": 2, "unitPrice": 75.0}],
            },
        }
        for body, event_type in (
            (order, "OrderPlaced"),
            (order, "OrderPlaced"),  # published twice: idempotent by order id
            ({"invoiceId": "i-demo", "amount": 42.0}, "invoice"),
        ):
            sns.publish(
                TopicArn=topic,
                Message=json.dumps(body),
                MessageAttributes={"eventType": {"DataType": "String", "StringValue": event_type}},
            )
        report = self.runtime.pump()
        deployed = {
            spec.environment.get(order_events.CONSUMER_NAME): spec.logical_id
            for spec in self.stack.functions.values()
        }
        invoked = {
            name: _invocations(report, deployed[name]) if name in deployed else "not deployed"
            for name in order_events.CONSUMER_NAMES
        }
        checks = [
            check(
                "every service consumer received both deliveries",
                dict.fromkeys(order_events.CONSUMER_NAMES, 2),
                invoked,
            )
        ]
        sqs = self.client("sqs")
        checks.append(
            check(
                "large-orders queue (body filter total ≥ 100)",
                2,
                _queue_depth(sqs, self.output("LargeOrdersQueueUrl")),
            )
        )
        invoice = [
            s.logical_id
            for s in self.stack.functions.values()
            if s.handler == order_events.INVOICE_HANDLER
        ]
        user = [
            s.logical_id
            for s in self.stack.functions.values()
            if s.handler == order_events.USER_HANDLER
        ]
        checks.append(
            check("invoice and user functions deployed", (1, 1), (len(invoice), len(user)))
        )
        checks.append(
            check("invoice function invoked once", 1, sum(_invocations(report, f) for f in invoice))
        )
        checks.append(
            check("user function not invoked", 0, sum(_invocations(report, f) for f in user))
        )
        checks.append(check("no failed invocation", 0, _failures(report)))
        return checks

    def send(self, event: dict[str, Any]) -> None:
        self.client("sns").publish(
            TopicArn=self.output("TopicArn"),
            Message=json.dumps(event["message"]),
            MessageAttributes=message_attributes(event.get("attributes", {})),  # types kept
        )


class PaymentsRouting(Scenario):
    topology = "PaymentsRouting"
    description = "put a 6000 and a 5000 facture; expect review for 6000 only, both audited"

    def run(self) -> list[Check]:
        events = self.client("events")
        bus = self.output("EventBusName")
        for facture, montant in (("f-high", 6000), ("f-limit", 5000)):
            events.put_events(
                Entries=[
                    {
                        "EventBusName": bus,
                        "Source": payments.SOURCE,
                        "DetailType": payments.DETAIL_TYPE,
                        "Detail": json.dumps(
                            {
                                "factureId": facture,
                                "montant": montant,
                                "devise": "EUR",
                                "client": "c-1",
                            }
                        ),
                    }
                ]
            )
        report = self.runtime.pump()
        review = [
            s.logical_id
            for s in self.stack.functions.values()
            if s.handler == payments.REVIEW_HANDLER
        ]
        sqs = self.client("sqs")
        return [
            check("review invoked for 6000 only", 1, sum(_invocations(report, f) for f in review)),
            check("audit queue received both", 2, _queue_depth(sqs, self.output("AuditQueueUrl"))),
            check("router DLQ empty", 0, _queue_depth(sqs, self.output("DeadLetterQueueUrl"))),
        ]

    def send(self, event: dict[str, Any]) -> None:
        self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.output("EventBusName"),
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                }
            ]
        )


class OrderPipeline(Scenario):
    topology = "OrderPipeline"
    description = (
        "POST created, paid, shipped through the API's real mapping; expect the order shipped"
    )

    def run(self) -> list[Check]:
        sqs = self.client("sqs")
        base = {"orderId": "o-demo", "customerId": "c-demo"}
        bodies = [
            {
                **base,
                "event": "created",
                "items": [{"sku": "A", "quantity": 1, "unitPrice": 9.5}],
                "total": 9.5,
                "currency": "EUR",
            },
            {**base, "event": "paid", "amount": 9.5},
            {**base, "event": "shipped", "carrier": "La Poste"},
        ]
        # Through the API as the sandbox serves it: validation, the real mapping, SendMessage.
        statuses = [self.post(body).status for body in bodies]
        invalid = self.post({"orderId": "o demo", "event": "lost"})
        errors = str(invalid.json().get("errors", "")) if invalid.status == 400 else ""
        self.runtime.pump()
        table = self.output("OrdersTableName")
        item = (
            self.client("dynamodb")
            .get_item(TableName=table, Key={"orderId": {"S": "o-demo"}}, ConsistentRead=True)
            .get("Item", {})
        )
        status = item.get("status", {}).get("S")
        return [
            check("the API accepts each event (202)", [202, 202, 202], statuses),
            check(
                "the API rejects an invalid order (400, its validation errors)",
                (400, True, True),
                (invalid.status, "customerId" in errors, "lost" in errors),
            ),
            check("order went created → paid → shipped", "shipped", status),
            check("version counts the three events", "3", item.get("version", {}).get("N")),
            check("queue drained", 0, _queue_depth(sqs, self.output("QueueUrl"))),
        ]

    def post(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        """``POST /orders`` through the sandbox's REST API (:mod:`conveyor.sandbox.apis`)."""
        from conveyor.sandbox.apis import RestApis

        apis = RestApis(self.deployment, session=self.session, endpoint_url=self.endpoint_url)
        url = apis.local_url(self.output("ApiUrl"), "")
        if url is None:
            raise KeyError(f"ApiUrl {self.output('ApiUrl')} is not a REST API of the sandbox")
        return apis.handle(
            "POST",
            url,
            headers={"Content-Type": "application/json", **(headers or {})},
            body=json.dumps(body).encode(),
        )

    def send(self, event: dict[str, Any]) -> str | None:
        response = self.post(event["body"], event.get("headers"))
        return f"POST /orders → {response.status} {response.body.decode().strip()}"


class OrderFulfillment(Scenario):
    topology = "OrderFulfillment"
    description = (
        "five OrderPlaced events through the saga: fulfilled, declined, out of stock after "
        "payment (release + refund), a transient error retried, a refund that fails (operators); "
        "Step Functions Retry waits scaled to 1/100 in the sandbox"
    )
    # Step Functions Retry waits are scaled down in the sandbox (Runtime.retry_scale).
    WAIT_S = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace_lines: list[str] = []

    def run(self) -> list[Check]:
        from conveyor.sandbox.sagas import OrderSagaDemo

        demo = OrderSagaDemo(self.client, self.output, self.runtime, wait_s=self.WAIT_S)
        checks = demo.run()
        self.trace_lines = demo.trace_lines
        return [check(c.name, c.expected, c.observed) for c in checks]

    def send(self, event: dict[str, Any]) -> None:
        self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.output("EventBusName"),
                    "Source": fulfillment.SOURCE,
                    "DetailType": fulfillment.ORDER_PLACED,
                    "Detail": json.dumps(event.get("detail", event)),
                }
            ]
        )


# What ``conveyor trace <Topology> --event FILE`` expects in FILE, per topology.
class Telemetry(Scenario):
    topology = "Telemetry"
    description = (
        "put 5 readings of 2 devices and a poison record; expect per-device aggregates, the "
        "poison record in the failure bucket, a GZIP archive, a replay counting nothing twice"
    )

    READINGS = (("d-1", 10), ("d-2", 5), ("d-1", 20), ("d-2", 7), ("d-1", 30))

    def run(self) -> list[Check]:
        kinesis, dynamodb, s3 = self.client("kinesis"), self.client("dynamodb"), self.client("s3")
        stream, table = self.output("StreamName"), self.output("AggregatesTableName")
        bucket = self.output("FailureBucketName")
        started = time.time() - 1
        entries: list[dict[str, Any]] = [
            # One JSON object per line: the archive (Firehose concatenates records) splits back.
            {
                "PartitionKey": device,
                "Data": json.dumps(self._reading(device, value, n)).encode() + b"\n",
            }
            for n, (device, value) in enumerate(self.READINGS)
        ]
        entries.insert(2, {"PartitionKey": "d-1", "Data": b"{not json\n"})  # mid-batch poison
        response = kinesis.put_records(StreamName=stream, Records=entries)
        checks = [check("records accepted by the stream", 0, response["FailedRecordCount"])]
        self.runtime.pump()
        expected = {"d-1": (3, 60), "d-2": (2, 12)}
        checks.append(check("aggregates per device", expected, self._aggregates(dynamodb, table)))
        failed = self._failed_payloads(s3, bucket)
        checks.append(check("failure object starts at the poison record", [b"{not json\n"], failed))
        archive = self.output("ArchiveBucketName")
        checks.append(
            check(
                "archive objects (GZIP) decompress to the records sent",
                sorted(e["Data"].rstrip(b"\n") for e in entries),
                sorted(self._archived(s3, archive).splitlines()),
            )
        )
        kinesis_source = self.runtime.source("kinesis")
        (mapping,) = [r.source for r in self.stack.routes if r.kind == "kinesis"]
        kinesis_source.replay(self.stack.name, mapping, started)
        self.runtime.pump()
        checks.append(
            check(
                "replay from the start time counts nothing twice",
                expected,
                self._aggregates(dynamodb, table),
            )
        )
        return checks

    @staticmethod
    def _reading(device: str, value: int, n: int) -> dict[str, Any]:
        return {
            telemetry.DEVICE_ID: device,
            telemetry.VALUE: value,
            telemetry.READ_AT: f"2026-12-02T10:00:0{n}Z",
        }

    @staticmethod
    def _aggregates(dynamodb: Any, table: str) -> dict[str, tuple[int, int]]:
        items = dynamodb.scan(TableName=table)["Items"]
        return {
            item[telemetry.TABLE_KEY]["S"]: (
                int(item[telemetry.READINGS]["N"]),
                int(float(item[telemetry.TOTAL]["N"])),
            )
            for item in items
        }

    @staticmethod
    def _archived(s3: Any, bucket: str) -> bytes:
        """The archive's objects (``readings/yyyy/MM/dd/HH/…gz``), decompressed, concatenated
        (records in shard order: order across shards is not kept)."""
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        return b"".join(
            gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
            for k in keys
            if k.startswith("readings/") and k.endswith(".gz")
        )

    @staticmethod
    def _failed_payloads(s3: Any, bucket: str) -> list[bytes]:
        """The first record of each failure object (Lambda's S3 on-failure payload): where the
        mapping gave up (the records after it in the retried batch were already applied)."""
        found: list[bytes] = []
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            body = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            event = json.loads(body["payload"])
            found.append(base64.b64decode(event["Records"][0]["kinesis"]["data"]))
        return found

    def send(self, event: dict[str, Any]) -> None:
        self.client("kinesis").put_record(
            StreamName=self.output("StreamName"),
            PartitionKey=str(event[telemetry.DEVICE_ID]),
            Data=json.dumps(event).encode(),
        )


class Accounts(Scenario):
    topology = "Accounts"
    description = (
        "the course's account: CompteCréé, DépôtEffectué(100), RetraitEffectué(30) → 70 through "
        "the API; an overdraft refused; a stale withdrawal losing the race; read model, rebuild, "
        "SMS and audit from the published events"
    )

    def run(self) -> list[Check]:
        from conveyor.sandbox.accounts import AccountsDemo

        demo = AccountsDemo(self.client, self.output, self.runtime, stack=self.stack.name)
        inbox = demo.subscribe_sms()
        opened = demo.open("Alice")
        checks = [check("OpenAccount answers 201", 201, opened.status)]
        account = str(opened.body.get("accountId"))
        checks.append(check("Deposit(100) answers 200", 200, demo.deposit(account, 100).status))
        checks.append(check("Withdraw(30) answers 200", 200, demo.withdraw(account, 30).status))
        refused = demo.withdraw(account, 500)
        checks.append(
            check(
                "Withdraw(500) refused: insufficient funds",
                (422, "InsufficientFunds"),
                (refused.status, refused.body.get("error")),
            )
        )
        stale = demo.withdraw(account, 10, expectedVersion=2)
        checks.append(
            check(
                "a withdrawal on a stale version loses the race (409, nothing appended)",
                (409, "ConcurrencyConflict"),
                (stale.status, stale.body.get("error")),
            )
        )
        checks.append(
            check(
                "event store: the course's three events, versions 1-3",
                [(1, "CompteCréé"), (2, "DépôtEffectué"), (3, "RetraitEffectué")],
                [(v, t) for v, t, _ in demo.stored_events(account)],
            )
        )
        self.runtime.pump()
        balance = demo.balance(account)
        checks.append(
            check(
                "GET /accounts/{id}: balance 70 at version 3 (the read model)",
                (200, 70, 3),
                (balance.status, balance.body.get("balance"), balance.body.get("version")),
            )
        )
        rebuilt = demo.rebuild()
        checks.append(check("rebuild replays one account", 1, rebuilt.get("accounts")))
        checks.append(
            check(
                "rebuilt read model == live projection",
                demo.read_model(),
                demo.read_model("RebuildTableName"),
            )
        )
        checks.append(
            check(
                "audit: each event once",
                [
                    (account, 1, "CompteCréé"),
                    (account, 2, "DépôtEffectué"),
                    (account, 3, "RetraitEffectué"),
                ],
                demo.audited(),
            )
        )
        checks.append(check("an SMS per event", 3, len(demo.sms(inbox))))
        failures = {
            name: demo.queue_depth(name)
            for name in (
                "ProjectionFailureQueueUrl",
                "OutboxFailureQueueUrl",
                "NotificationFailureQueueUrl",
                "AuditFailureQueueUrl",
                "DeadLetterQueueUrl",
            )
        }
        checks.append(check("failure queues empty", 0, sum(failures.values())))
        return checks

    def send(self, event: dict[str, Any]) -> None:
        from conveyor.sandbox.accounts import AccountsDemo

        demo = AccountsDemo(self.client, self.output, self.runtime, stack=self.stack.name)
        opened = demo.open(str(event.get("owner", "Alice")))
        account = str(opened.body.get("accountId"))
        for amount in event.get("deposits", []):
            demo.deposit(account, int(amount))
        for amount in event.get("withdrawals", []):
            demo.withdraw(account, int(amount))


class OrderChoreography(Scenario):
    topology = "OrderChoreography"
    description = (
        "two orders through Commande → Stock / Facturation → Notification (no orchestrator): "
        "one in stock (reserved, invoiced, notified), one out of stock (StockIndisponible → "
        "cancelled, invoice voided, customer told); a duplicate CommandeCréée changes nothing"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace_lines: list[str] = []
        self.correlation_ids: dict[str, str] = {}

    def run(self) -> list[Check]:
        from conveyor.sandbox.choreography import ChoreographyDemo

        demo = ChoreographyDemo(self.client, self.output, self.runtime, stack=self.stack.name)
        demo.tap()
        demo.seed_stock({"SKU-A": 10, "SKU-B": 1})
        served = demo.place("order-1", "customer-1", [("SKU-A", 2, 1500), ("SKU-B", 1, 500)])
        self.correlation_ids["order-1"] = served.correlation_id
        checks = [
            check("order-1 created", "CREATED", demo.order_status("order-1")),
            check(
                "order-1 stock reserved", (8, 0), (demo.available("SKU-A"), demo.available("SKU-B"))
            ),
            check("order-1 invoiced (2×1500 + 500)", ("ISSUED", 3500), demo.invoice("order-1")),
            check(
                "order-1 customer notified of the invoice and the reservation",
                [choreography.INVOICE_CREATED, choreography.STOCK_UPDATED],
                demo.notifications("order-1"),
            ),
        ]
        short = demo.place("order-2", "customer-2", [("SKU-B", 3, 500)])
        self.correlation_ids["order-2"] = short.correlation_id
        checks += [
            check(
                "order-2 cancelled (StockIndisponible)", "CANCELLED", demo.order_status("order-2")
            ),
            check("order-2 invoice voided", ("VOID", 1500), demo.invoice("order-2")),
            check(
                "order-2 customer told of the cancellation",
                True,
                choreography.ORDER_CANCELLED in demo.notifications("order-2"),
            ),
        ]
        before = (demo.available("SKU-A"), demo.invoice("order-1"), demo.notifications("order-1"))
        created = [
            e
            for e in demo.published()
            if e["detail-type"] == choreography.ORDER_CREATED
            and e["detail"]["orderId"] == "order-1"
        ]
        checks.append(check("one CommandeCréée published for order-1", 1, len(created)))
        if created:
            demo.redeliver(created[0])
        checks.append(
            check(
                "a duplicate CommandeCréée (same eventId) changes nothing",
                before,
                (demo.available("SKU-A"), demo.invoice("order-1"), demo.notifications("order-1")),
            )
        )
        duplicate = demo.place("order-1", "customer-1", [("SKU-A", 2, 1500), ("SKU-B", 1, 500)])
        checks.append(
            check("PlaceOrder again for order-1 publishes nothing", "DUPLICATE", duplicate.status)
        )
        failures = sum(
            demo.queue_depth(f"{service}FailureQueueUrl")
            for service in ("Commande", "Stock", "Facturation", "Notification")
        ) + demo.queue_depth("DeadLetterQueueUrl")
        checks.append(check("failure queues empty", 0, failures))
        return checks

    def send(self, event: dict[str, Any]) -> None:
        from conveyor.sandbox.choreography import ChoreographyDemo

        demo = ChoreographyDemo(self.client, self.output, self.runtime, stack=self.stack.name)
        demo.seed_stock({str(k): int(v) for k, v in event.get("stock", {}).items()})
        placed = demo.place(
            str(event.get("orderId", "order-1")),
            str(event.get("customerId", "customer-1")),
            [
                (str(line["sku"]), int(line["quantity"]), int(line.get("unitPrice", 0)))
                for line in event["lines"]
            ],
            pump=False,
        )
        self.correlation_ids[placed.order_id] = placed.correlation_id


# -- tours (course 5.2): RabbitMQ and Kafka -----------------------------------------------------


def tour_booking(booking_id: str, **extra: Any) -> dict[str, Any]:
    """The course's booking payload."""
    return {
        tours.BOOKING_ID: booking_id,
        tours.TOUR_ID: "paris-city-tour",
        tours.USER_ID: "user-42",
        tours.BOOKING_DATE: "2026-12-02T10:00:00Z",
        tours.STATUS: "confirmed",
        tours.TOTAL_PRICE: 199.99,
        **extra,
    }


def api_request(body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    """The API Gateway (REST, proxy) event of POST /bookings."""
    return {
        "resource": "/bookings",
        "path": "/bookings",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", tours.CORRELATION_HEADER: correlation_id},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


class _Tours(Scenario):
    """Shared by both broker topologies: POST through the producer, read notifications."""

    def post(self, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        name = self.output("ProducerFunctionName")
        result = self.runtime.invoke(name, api_request(body, correlation_id), stack=self.stack.name)
        if not result.ok:
            raise RuntimeError(f"the producer failed: {result.error}")
        response: dict[str, Any] = result.response
        answer: dict[str, Any] = json.loads(response["body"])
        answer["statusCode"] = response["statusCode"]
        return answer

    def notification(self, booking_id: str) -> dict[str, Any]:
        item: dict[str, Any] = (
            self.client("dynamodb")
            .get_item(
                TableName=self.output("NotificationsTableName"),
                Key={tours.NOTIFICATIONS_KEY: {"S": booking_id}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        return item

    def sends(self, booking_id: str) -> int:
        return int(self.notification(booking_id).get(tours.SENDS, {}).get("N", "0"))

    def history(self, booking_id: str) -> list[str]:
        return [v["S"] for v in self.notification(booking_id).get(tours.HISTORY, {}).get("L", [])]

    def send(self, event: dict[str, Any]) -> None:
        self.post(event, str(event.get("correlationId", "trace-demo")))

    def secret(self) -> dict[str, str]:
        value = self.client("secretsmanager").get_secret_value(
            SecretId=self.output("BrokerSecretArn")
        )
        document: dict[str, str] = json.loads(value["SecretString"])
        return document


# The course's routing table (exercise 1 and its bonus): routing key -> bound to
# notification_queue (tour.booked and tour.booked.*).
TOURS_ROUTING_TABLE = (
    ("tour.booked", True),
    ("tour.booked.premium", True),
    ("tour.booked.standard", True),
    ("tour.cancelled", False),
)


class ToursRabbitMq(_Tours):
    topology = "ToursRabbitMQ"
    description = (
        "POST bookings through the RabbitMQ producer (confirms); the course's routing table, "
        "a duplicate notified once, a poison message redelivered then dead-lettered"
    )

    def run(self) -> list[Check]:
        checks: list[Check] = []
        self.routing: list[tuple[str, bool, int]] = []
        for number, (key, bound) in enumerate(TOURS_ROUTING_TABLE):
            booking = f"rmq-{number}"
            body = tour_booking(booking, eventType=key)
            answer = self.post(body, f"corr-{booking}")
            self.runtime.pump()
            sends = self.sends(booking)
            self.routing.append((key, bool(answer.get("routed")), sends))
            checks.append(
                check(
                    f"{key}: routed to notification_queue = {bound}, notified {int(bound)}×",
                    (True, bound, int(bound)),
                    (answer["statusCode"] == 202, answer.get("routed"), sends),
                )
            )
        self.post(tour_booking("rmq-0", eventType="tour.booked"), "corr-duplicate")
        self.runtime.pump()
        checks.append(check("a duplicate booking is notified once", 1, self.sends("rmq-0")))
        checks.append(
            check(
                "the correlation id reaches the consumer",
                "corr-rmq-0",
                self.notification("rmq-0").get(tours.LAST_CORRELATION_ID, {}).get("S"),
            )
        )
        before = self.dead_letter_depth()
        self.publish_raw(b"{not json", routing_key=tours.TOUR_BOOKED)
        report = self.runtime.pump()
        failed = sum(int(s.errors) for s in report.functions.values())
        checks.append(
            check(
                "a poison message fails, is redelivered up to the delivery limit",
                tours.DELIVERY_LIMIT + 1,
                failed,
            )
        )
        checks.append(
            check("then the broker dead-letters it", before + 1, self.dead_letter_depth())
        )
        return checks

    def _channel(self) -> Any:
        from urllib.parse import quote, urlparse

        import pika

        secret = self.secret()
        endpoint = urlparse(self.output("BrokerEndpoint"))
        url = (
            f"{endpoint.scheme}://{quote(secret['username'], safe='')}:"
            f"{quote(secret['password'], safe='')}@{endpoint.netloc}/%2F"
        )
        return pika.BlockingConnection(pika.URLParameters(url)).channel()

    def publish_raw(self, body: bytes, *, routing_key: str) -> None:
        import pika

        channel = self._channel()
        try:
            channel.basic_publish(
                self.output("Exchange"),
                routing_key,
                body,
                pika.BasicProperties(delivery_mode=2, correlation_id="corr-poison"),
            )
        finally:
            channel.connection.close()

    def dead_letter_depth(self) -> int:
        channel = self._channel()
        try:
            frame = channel.queue_declare(self.output("DeadLetterQueue"), passive=True)
            return int(frame.method.message_count)
        finally:
            channel.connection.close()


class ToursKafka(_Tours):
    topology = "ToursKafka"
    description = (
        "POST bookings through the Kafka producer (idempotent, key = bookingId); order per "
        "booking across 3 partitions, a duplicate notified once, a poison record to the "
        "on-failure queue"
    )

    BOOKINGS = tuple(f"kfk-{n}" for n in range(6))

    def run(self) -> list[Check]:
        checks: list[Check] = []
        partitions: dict[str, set[int]] = {}
        for booking in self.BOOKINGS:  # booked, then cancelled: interleaved across bookings
            answer = self.post(tour_booking(booking), f"corr-{booking}")
            partitions.setdefault(booking, set()).add(int(answer["partition"]))
        for booking in self.BOOKINGS:
            answer = self.post(
                tour_booking(booking, eventType=tours.TOUR_CANCELLED, status="cancelled"),
                f"corr-{booking}-cancel",
            )
            partitions[booking].add(int(answer["partition"]))
        self.runtime.pump()
        self.partitions = {b: sorted(p) for b, p in partitions.items()}
        self.histories = {b: self.history(b) for b in self.BOOKINGS}
        used = {p for ps in partitions.values() for p in ps}
        checks.append(
            check(
                "each booking's events land on one partition",
                True,
                all(len(p) == 1 for p in partitions.values()),
            )
        )
        checks.append(check("bookings spread over several partitions", True, len(used) > 1))
        checks.append(
            check(
                "each booking's events are consumed in order",
                {b: [tours.TOUR_BOOKED, tours.TOUR_CANCELLED] for b in self.BOOKINGS},
                self.histories,
            )
        )
        self.post(tour_booking(self.BOOKINGS[0]), "corr-duplicate")
        self.runtime.pump()
        checks.append(
            check(
                "a duplicate booking is notified once (booked + cancelled: 2 sends)",
                2,
                self.sends(self.BOOKINGS[0]),
            )
        )
        self.produce_raw(b"{not json", key=b"kfk-poison")
        report = self.runtime.pump()
        checks.append(check("a poison record ends in the on-failure queue", 1, report.on_failure))
        sqs = self.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.output("FailureQueueUrl"), MaxNumberOfMessages=10
        ).get("Messages", [])
        info = json.loads(messages[0]["Body"]).get("KafkaBatchInfo", {}) if messages else {}
        checks.append(
            check("with its topic-partition and offsets", 1, len(info.get("recordsInfo", {})))
        )
        return checks

    def produce_raw(self, value: bytes, *, key: bytes) -> None:
        from confluent_kafka import Producer

        brokers = self.client("kafka").get_bootstrap_brokers(ClusterArn=self.output("ClusterArn"))
        producer = Producer({"bootstrap.servers": brokers["BootstrapBrokerString"]})
        producer.produce(
            self.output("Topic"), key=key, value=value, headers={"eventType": "tour.booked"}
        )
        producer.flush(10)


EVENT_SHAPES = {
    "ImagePipeline": '{"file": "photo.jpg", "key": "uploads/photo.jpg"}',
    "OrderEvents": '{"message": {...}, "attributes": {"eventType": "OrderPlaced"}}',
    "PaymentsRouting": '{"source": "app.paiement", "detail-type": "facture", "detail": {...}}',
    "OrderPipeline": '{"body": {"orderId": ..., "event": "created", ...}, "headers": {}}',
    "OrderFulfillment": '{"detail": {"orderId": ..., "customerId": ..., "amount": 42, '
    '"currency": "EUR", "paymentToken": "tok_ok", "lines": [{"sku": "SKU-A", "quantity": 1}]}}',
    "Telemetry": '{"deviceId": "d-1", "value": 21.5, "readAt": "2026-12-02T10:00:00Z"}',
    "Accounts": '{"owner": "Alice", "deposits": [100], "withdrawals": [30]}',
    "OrderChoreography": '{"orderId": "order-9", "customerId": "c-9", "stock": {"SKU-A": 5}, '
    '"lines": [{"sku": "SKU-A", "quantity": 1, "unitPrice": 1500}]}',
    "ToursRabbitMQ": '{"bookingId": "b-1", "tourId": ..., "userId": ..., "bookingDate": ..., '
    '"status": "confirmed", "totalPrice": 199.99, "tier": "premium"}',
    "ToursKafka": '{"bookingId": "b-1", "tourId": ..., "userId": ..., "bookingDate": ..., '
    '"status": "confirmed", "totalPrice": 199.99}',
}


def _invocations(report: Any, logical_id: str) -> int:
    """Records (SQS) or events (SNS, EventBridge) a function was given (0: never invoked)."""
    stats = report.functions.get(logical_id)
    return int(stats.records) if stats is not None else 0


def _failures(report: Any) -> int:
    return sum(int(stats.errors) for stats in report.functions.values())


SCENARIOS: tuple[type[Scenario], ...] = (
    ImagePipeline,
    OrderEvents,
    PaymentsRouting,
    OrderPipeline,
    OrderFulfillment,
    Telemetry,
    Accounts,
    OrderChoreography,
    ToursRabbitMq,
    ToursKafka,
)


def run_all(
    deployment: Deployment,
    runtime: Any,
    session: boto3.session.Session,
    endpoint_url: str | None = None,
    print_fn: Callable[[str], None] = print,
) -> list[tuple[str, list[Check]]]:
    results = []
    for scenario_type in SCENARIOS:
        try:
            stack_for(deployment, scenario_type.topology)
        except KeyError:
            continue
        scenario = scenario_type(deployment, runtime, session, endpoint_url)
        print_fn(f"▶ {scenario.topology}: {scenario.description}")
        try:
            checks = scenario.run()
        except Exception as exc:  # a missing output or resource fails the scenario, loudly
            checks = [check("scenario ran to the end", "no error", f"{type(exc).__name__}: {exc}")]
        for line in getattr(scenario, "trace_lines", []):  # e.g. Step Functions histories
            print_fn(f"   {line}")
        for item in checks:
            mark = "✓" if item.ok else "✗"
            detail = "" if item.ok else f" (expected {item.expected}, observed {item.observed})"
            print_fn(f"   {mark} {item.name}{detail}")
        results.append((scenario.topology, checks))
    return results
