"""FanOutTopic: an SNS topic (standard or FIFO) with filtered subscribers, each with its own DLQ.

Pub/sub fan-out from the course: one publisher, any number of independent subscribers, each
receiving only what its filter policy matches. Secure and correct by default:

- the topic is encrypted with a customer-managed KMS key and denies non-TLS publishing;
- every subscription gets its own dead-letter queue (standard SQS, or FIFO for a FIFO topic),
  encrypted with a key SNS may use for that topic only;
- filter policies — on message attributes or, with ``filter_policy_scope="MessageBody"``, on
  the payload — are validated at synth against the service's operators and limits
  (5 keys, 150 combinations), so a typo is an error and not a filter that never matches;
- publishers are granted through :meth:`grant_publish` (IAM principals, including the key)
  or ``service_publishers`` (AWS services such as EventBridge or CloudWatch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from conveyor.constructs.defaults import DEAD_LETTER_RETENTION
from conveyor.constructs.filters import validate_sns_filter_policy
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.constructs.queues import (
    allow_service_to_encrypt,
    dead_letter_queue,
    fifo_name,
    new_key,
)
from conveyor.constructs.rules import require

SCOPES = ("MessageAttributes", "MessageBody")


class FanOutTopic(Construct):
    """An SNS topic and its subscribers.

    Attributes: ``topic``, ``encryption_key``, ``subscriber_key`` (of the queues SNS delivers
    to), ``fifo``,
    ``subscriptions`` (id → Subscription),
    ``dead_letter_queues`` (id → the subscription's DLQ).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        fifo: bool = False,
        content_based_deduplication: bool = False,
        topic_name: str | None = None,
        display_name: str | None = None,
        encryption_key: kms.IKey | None = None,
        service_publishers: Sequence[str] = (),
        dead_letter_retention_period: Duration | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Create the topic.

        :param fifo: a FIFO topic: ordered per message group, deduplicated; only FIFO SQS
            queues can subscribe. Default: standard.
        :param content_based_deduplication: FIFO only. Default: off.
        :param topic_name: Default: generated (``.fifo`` appended for FIFO when missing).
        :param display_name: shown in e-mail notifications. Default: none.
        :param encryption_key: the topic's key. Default: a new customer-managed key with
            rotation. The queues the topic delivers to get another key (``subscriber_key``),
            which SNS may use for this topic only.
        :param service_publishers: AWS service principals allowed to publish, e.g.
            ``["events.amazonaws.com"]``: each gets ``sns:Publish`` on the topic (for this
            account) and use of the key. Default: none.
        :param dead_letter_retention_period: of every subscription DLQ. Default: 14 days.
        :param removal_policy: keys and DLQs. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        require(
            fifo or not content_based_deduplication,
            self.node.path,
            "content_based_deduplication applies to FIFO topics only (set fifo=True)",
        )
        self.fifo = fifo
        self._removal_policy = removal_policy
        self._dead_letter_retention = dead_letter_retention_period or DEAD_LETTER_RETENTION
        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the topic {self.node.path} and its subscription DLQs",
            removal_policy=removal_policy,
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            fifo=fifo or None,
            content_based_deduplication=content_based_deduplication or None,
            topic_name=fifo_name(topic_name, fifo),
            display_name=display_name,
            master_key=self.encryption_key,
            enforce_ssl=True,
        )
        # Queues SNS writes to (subscription DLQs and, by default, subscribed consumers' queues)
        # share one key whose policy names this topic — the topic's own key cannot (the topic
        # references its key: that would be a cycle).
        self.subscriber_key: kms.IKey = new_key(
            self,
            "SubscriberKey",
            description=f"Encrypts the queues {self.node.path} delivers to",
            removal_policy=removal_policy,
        )
        allow_service_to_encrypt(
            self.subscriber_key,
            "sns.amazonaws.com",
            source_arn=self.topic.topic_arn,
            sid="AllowThisTopicToEncryptDeadLetters",
        )
        for service in service_publishers:
            self._allow_service_publisher(service)
        self.subscriptions: dict[str, sns.Subscription] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}

    # -- publishers ------------------------------------------------------------------------

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let an IAM principal publish (``sns:Publish`` on the topic and use of its key)."""
        return self.topic.grant_publish(grantee)

    def _allow_service_publisher(self, service: str) -> None:
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(service)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        allow_service_to_encrypt(self.encryption_key, service)

    # -- subscribers -----------------------------------------------------------------------

    def add_queue(
        self,
        subscriber_id: str,
        *,
        queue: sqs.IQueue,
        filter_policy: Mapping[str, Any] | None = None,
        filter_policy_scope: str = "MessageAttributes",
        raw_message_delivery: bool = False,
    ) -> sns.Subscription:
        """Subscribe an existing queue. With ``raw_message_delivery`` the queue receives the
        message itself (attributes as SQS message attributes) instead of the SNS envelope.
        A customer-managed queue key gets the statement that lets SNS use it."""
        require(
            not self.fifo or queue.fifo,
            f"{self.node.path}/{subscriber_id}",
            "a FIFO topic can only deliver to FIFO SQS queues",
        )
        return self._subscribe(
            subscriber_id,
            lambda dlq: subscriptions.SqsSubscription(
                queue, raw_message_delivery=raw_message_delivery, dead_letter_queue=dlq
            ),
            filter_policy,
            filter_policy_scope,
        )

    def add_queue_consumer(
        self,
        subscriber_id: str,
        *,
        filter_policy: Mapping[str, Any] | None = None,
        filter_policy_scope: str = "MessageAttributes",
        raw_message_delivery: bool = False,
        **consumer_props: Any,
    ) -> QueueConsumer:
        """Subscribe a new :class:`QueueConsumer` (queue + DLQ + Lambda), FIFO when the topic
        is. ``consumer_props`` are QueueConsumer's (``code``, ``handler``, ``batch_size``…);
        its queues use :attr:`subscriber_key` unless ``encryption_key`` is given."""
        require(
            "fifo" not in consumer_props,
            f"{self.node.path}/{subscriber_id}",
            "the consumer's queue type follows the topic: do not pass fifo",
        )
        consumer_props.setdefault("encryption_key", self.subscriber_key)
        consumer = QueueConsumer(
            self,
            subscriber_id,
            fifo=self.fifo,
            removal_policy=consumer_props.pop("removal_policy", self._removal_policy),
            **consumer_props,
        )
        self.add_queue(
            subscriber_id,
            queue=consumer.queue,
            filter_policy=filter_policy,
            filter_policy_scope=filter_policy_scope,
            raw_message_delivery=raw_message_delivery,
        )
        return consumer

    def add_function(
        self,
        subscriber_id: str,
        *,
        function: lambda_.IFunction,
        filter_policy: Mapping[str, Any] | None = None,
        filter_policy_scope: str = "MessageAttributes",
    ) -> sns.Subscription:
        """Subscribe a Lambda function (asynchronous invocation: configure the function's own
        retry and on-failure destination for handler errors; the subscription DLQ catches
        messages SNS could not deliver)."""
        self._require_standard(subscriber_id, "Lambda")
        return self._subscribe(
            subscriber_id,
            lambda dlq: subscriptions.LambdaSubscription(function, dead_letter_queue=dlq),
            filter_policy,
            filter_policy_scope,
        )

    def add_email(
        self,
        subscriber_id: str,
        *,
        address: str,
        filter_policy: Mapping[str, Any] | None = None,
        filter_policy_scope: str = "MessageAttributes",
    ) -> sns.Subscription:
        """Subscribe an e-mail address (the recipient must confirm the subscription)."""
        self._require_standard(subscriber_id, "e-mail")
        require(
            "@" in address,
            f"{self.node.path}/{subscriber_id}",
            f"{address!r} is not an e-mail address",
        )
        return self._subscribe(
            subscriber_id,
            lambda dlq: subscriptions.EmailSubscription(address, dead_letter_queue=dlq),
            filter_policy,
            filter_policy_scope,
        )

    def add_https(
        self,
        subscriber_id: str,
        *,
        url: str,
        filter_policy: Mapping[str, Any] | None = None,
        filter_policy_scope: str = "MessageAttributes",
        raw_message_delivery: bool = False,
    ) -> sns.Subscription:
        """Subscribe an HTTPS endpoint (it must confirm the subscription; plain HTTP is
        rejected: messages would travel unencrypted)."""
        self._require_standard(subscriber_id, "HTTPS")
        require(
            url.startswith("https://"),
            f"{self.node.path}/{subscriber_id}",
            f"the endpoint must be https:// (got {url!r})",
        )
        return self._subscribe(
            subscriber_id,
            lambda dlq: subscriptions.UrlSubscription(
                url,
                protocol=sns.SubscriptionProtocol.HTTPS,
                raw_message_delivery=raw_message_delivery,
                dead_letter_queue=dlq,
            ),
            filter_policy,
            filter_policy_scope,
        )

    # -- internals -------------------------------------------------------------------------

    def _require_standard(self, subscriber_id: str, kind: str) -> None:
        require(
            not self.fifo,
            f"{self.node.path}/{subscriber_id}",
            f"a FIFO topic cannot deliver to {kind} subscribers, only to FIFO SQS queues",
        )

    def _subscribe(
        self,
        subscriber_id: str,
        make: Any,
        filter_policy: Mapping[str, Any] | None,
        filter_policy_scope: str,
    ) -> sns.Subscription:
        path = f"{self.node.path}/{subscriber_id}"
        require(subscriber_id not in self.subscriptions, path, "duplicate subscriber id")
        require(
            filter_policy_scope in SCOPES,
            path,
            f"filter_policy_scope must be one of {', '.join(SCOPES)}",
        )
        if filter_policy is not None:
            validate_sns_filter_policy(filter_policy, scope=filter_policy_scope, where=path)
        dlq = dead_letter_queue(
            self,
            f"{subscriber_id}DeadLetterQueue",
            key=self.subscriber_key,
            removal_policy=self._removal_policy,
            fifo=self.fifo,
            retention_period=self._dead_letter_retention,
        )
        subscription = self.topic.add_subscription(make(dlq))
        if filter_policy is not None:
            cfn = cast(sns.CfnSubscription, subscription.node.default_child)
            cfn.filter_policy = dict(filter_policy)
            cfn.filter_policy_scope = filter_policy_scope
        self.subscriptions[subscriber_id] = subscription
        self.dead_letter_queues[subscriber_id] = dlq
        return subscription
