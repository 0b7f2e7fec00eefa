"""The REST APIs of a deployment, served by the sandbox (moto's API Gateway does not run
integrations).

Each ``AWS::ApiGateway::RestApi`` of the assembly answers on the sandbox endpoint at
LocalStack's path, ``/restapis/<id>/<stage>/_user_request_/<path>``. A request goes through
what API Gateway does, in its order, built from the template's resources (their resolved
properties, kept by the deployer):

1. the method: the resource tree (``{param}`` and greedy ``{proxy+}`` parts), ``ANY``;
   none → ``MISSING_AUTHENTICATION_TOKEN`` (403);
2. the API key, when the method requires one: ``x-api-key`` must be an enabled key of a usage
   plan of this API and stage (``INVALID_API_KEY``, 403), within the plan's quota
   (``QUOTA_EXCEEDED``, 429). Throttling is not enforced, nor is IAM (SigV4) authorization;
3. the request validator: required parameters (``BAD_REQUEST_PARAMETERS``) and the body
   against the method's model with ``jsonschema`` (``BAD_REQUEST_BODY`` with
   ``$context.error.validationErrorString``);
4. the integration: ``MOCK``; ``AWS`` (the request template rendered with airspeed, then the
   service action through boto3: SQS ``SendMessage``, DynamoDB ``GetItem``… for the JSON
   protocol the rendered body is the action's input; a Lambda function invoked in-process);
   ``AWS_PROXY`` to Lambda (the proxy event, the function's ``statusCode``/``headers``/
   ``body``);
5. the integration response chosen by its ``SelectionPattern`` (the backend's status code;
   a Lambda function's ``errorMessage``), rendered, with its literal header parameters and
   ``$context.responseOverride.status``;
6. errors as the template's gateway responses define them (the type, then ``DEFAULT_4XX`` /
   ``DEFAULT_5XX``, then API Gateway's own default).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from conveyor.sandbox.model import DeployedStack, Deployment
from conveyor.sandbox.vtl import render

PATH = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
EXECUTE_API = re.compile(
    r"^https://(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com/(?P<stage>[^/]+)(?P<path>/.*)?$"
)
JSON = "application/json"

# API Gateway's gateway response types: default status and message.
DEFAULTS: dict[str, tuple[int, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded"),
    "BAD_REQUEST_PARAMETERS": (400, "Missing required request parameters"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type"),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "DEFAULT_5XX": (502, "Internal server error"),
}


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Method:
    http_method: str
    path: str  # resource path, e.g. /orders/{id}
    properties: dict[str, Any]


@dataclass
class RestApi:
    """One REST API: its id, stages, methods, models, validators, gateway responses, keys."""

    stack: str
    logical_id: str
    id: str
    name: str
    stages: set[str] = field(default_factory=set)
    methods: list[_Method] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    validators: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> props
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)  # type -> props
    # stage -> api key value -> (key id, daily quota or None)
    keys: dict[str, dict[str, tuple[str, int | None]]] = field(default_factory=dict)

    def url(self, endpoint: str, stage: str) -> str:
        return f"{endpoint}/restapis/{self.id}/{stage}/_user_request_/"


def api_key_value(stack: str, logical_id: str) -> str:
    """The value of an API key the template leaves to API Gateway (deterministic here)."""
    return "sbx" + hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:37]


def find_apis(deployment: Deployment) -> list[RestApi]:
    return [api for stack in deployment.stacks.values() for api in _stack_apis(stack)]


def _of_type(stack: DeployedStack, kind: str) -> list[Any]:
    return [r for r in stack.resources.values() if r.type == f"AWS::ApiGateway::{kind}"]


def _stack_apis(stack: DeployedStack) -> list[RestApi]:
    apis: dict[str, RestApi] = {}
    roots: dict[str, str] = {}
    for resource in _of_type(stack, "RestApi"):
        name = str(resource.properties.get("Name", resource.logical_id))
        apis[resource.physical_id] = RestApi(
            stack.name, resource.logical_id, resource.physical_id, name
        )
        roots[resource.attributes.get("RootResourceId", "")] = resource.physical_id
    tree = {
        r.physical_id: (str(r.properties.get("ParentId", "")), str(r.properties.get("PathPart")))
        for r in _of_type(stack, "Resource")
    }

    def path_of(resource_id: str) -> str:
        parts: list[str] = []
        while resource_id in tree:
            resource_id, part = tree[resource_id]
            parts.insert(0, part)
        return "/" + "/".join(parts)

    def api_of(props: Mapping[str, Any]) -> RestApi | None:
        return apis.get(str(props.get("RestApiId", "")))

    for kind in ("Stage", "Deployment"):
        for resource in _of_type(stack, kind):
            api = api_of(resource.properties)
            stage = resource.properties.get("StageName")
            if api is not None and isinstance(stage, str) and stage:
                api.stages.add(stage)
    for resource in _of_type(stack, "Method"):
        api = api_of(resource.properties)
        if api is not None:
            path = path_of(str(resource.properties.get("ResourceId", "")))
            method = str(resource.properties.get("HttpMethod", "ANY")).upper()
            api.methods.append(_Method(method, path, resource.properties))
    for resource in _of_type(stack, "Model"):
        api = api_of(resource.properties)
        if api is not None and isinstance(resource.properties.get("Schema"), dict):
            api.models[resource.physical_id] = resource.properties["Schema"]
    for resource in _of_type(stack, "RequestValidator"):
        api = api_of(resource.properties)
        if api is not None:
            api.validators[resource.physical_id] = resource.properties
    for resource in _of_type(stack, "GatewayResponse"):
        api = api_of(resource.properties)
        if api is not None:
            kind = str(resource.properties.get("ResponseType"))
            api.gateway_responses[kind] = resource.properties
    _add_keys(stack, apis)
    return list(apis.values())


def _add_keys(stack: DeployedStack, apis: dict[str, RestApi]) -> None:
    keys = {}
    for key in _of_type(stack, "ApiKey"):
        if key.properties.get("Enabled", True) in (False, "false"):
            continue
        value = key.properties.get("Value") or api_key_value(stack.name, key.logical_id)
        keys[key.physical_id] = str(value)
    plans = {p.physical_id: p.properties for p in _of_type(stack, "UsagePlan")}
    for link in _of_type(stack, "UsagePlanKey"):
        plan = plans.get(str(link.properties.get("UsagePlanId", "")))
        key_id = str(link.properties.get("KeyId", ""))
        if plan is None or key_id not in keys:
            continue
        quota = plan.get("Quota") or {}
        limit = int(quota["Limit"]) if quota.get("Limit") else None
        for api_stage in plan.get("ApiStages") or []:
            api = apis.get(str(api_stage.get("ApiId", "")))
            if api is not None:
                stage = str(api_stage.get("Stage", ""))
                api.keys.setdefault(stage, {})[keys[key_id]] = (key_id, limit)


class _Failure(Exception):
    """A request API Gateway answers with a gateway response of ``kind``."""

    def __init__(self, kind: str, message: str | None = None, **context: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message or DEFAULTS.get(kind, (500, "Internal server error"))[1]
        self.context = context


class RestApis:
    """Serves the REST APIs of ``deployment``.

    :param session: boto3 session for the AWS integrations; ``endpoint_url`` the sandbox.
    :param runtime: the :class:`~conveyor.sandbox.runtime.Runtime` running the functions of
        Lambda integrations (None: those answer 502).
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        session: Any,
        endpoint_url: str | None = None,
        runtime: Any = None,
    ) -> None:
        self.deployment = deployment
        self.apis = {api.id: api for api in find_apis(deployment)}
        self._session = session
        self._endpoint_url = endpoint_url
        self._runtime = runtime
        self._clients: dict[str, Any] = {}
        self._usage: dict[tuple[str, str, str], int] = {}  # (api, key, day) -> requests

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, region_name=self.deployment.region, endpoint_url=self._endpoint_url
            )
        return self._clients[service]

    def local_url(self, value: str, endpoint: str) -> str | None:
        """The sandbox URL of an ``https://<id>.execute-api…/<stage>/<path>`` value."""
        match = EXECUTE_API.match(value)
        if match is None or match["api"] not in self.apis:
            return None
        path = (match["path"] or "/").removeprefix("/")
        return f"{self.apis[match['api']].url(endpoint, match['stage'])}{path}"

    # -- a request ----------------------------------------------------------------------

    def handle(
        self,
        http_method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> ApiResponse:
        """Answer ``http_method path`` (``/restapis/<id>/<stage>/_user_request_/…``)."""
        match = PATH.match(path)
        if match is None or match["api"] not in self.apis:
            known = ", ".join(f"{a.id} ({a.stack}/{a.name})" for a in self.apis.values())
            message = f"no REST API at {path} in the sandbox (APIs: {known or 'none'})"
            body = json.dumps({"message": message}).encode()
            return ApiResponse(404, {"Content-Type": JSON}, body)
        api = self.apis[match["api"]]
        request = _Request(
            http_method.upper(),
            match["stage"],
            match["path"] or "/",
            {k.lower(): v for k, v in (headers or {}).items()},
            dict(query or {}),
            body,
        )
        try:
            if request.stage not in api.stages:
                raise _Failure("MISSING_AUTHENTICATION_TOKEN")
            method, path_params = _route(api, request)
            request.path_params = path_params
            self._check_key(api, method, request)
            self._validate(api, method, request)
            return self._integrate(api, method, request)
        except _Failure as failure:
            return _gateway_response(api, failure, request)

    def _check_key(self, api: RestApi, method: _Method, request: _Request) -> None:
        if method.properties.get("ApiKeyRequired") not in (True, "true"):
            return
        value = request.headers.get("x-api-key", "")
        entry = api.keys.get(request.stage, {}).get(value)
        if entry is None:
            raise _Failure("INVALID_API_KEY")
        key_id, limit = entry
        day = time.strftime("%Y-%m-%d", time.gmtime())
        used = self._usage.get((api.id, key_id, day), 0)
        if limit is not None and used >= limit:
            raise _Failure("QUOTA_EXCEEDED")
        self._usage[(api.id, key_id, day)] = used + 1

    def _validate(self, api: RestApi, method: _Method, request: _Request) -> None:
        validator = api.validators.get(str(method.properties.get("RequestValidatorId", "")))
        if validator is None:
            return
        if validator.get("ValidateRequestParameters") in (True, "true"):
            missing = [
                name.split(".", 3)[-1]
                for name, required in (method.properties.get("RequestParameters") or {}).items()
                if required in (True, "true") and request.parameter(name) is None
            ]
            if missing:
                raise _Failure(
                    "BAD_REQUEST_PARAMETERS",
                    f"Missing required request parameters: [{', '.join(missing)}]",
                )
        if validator.get("ValidateRequestBody") not in (True, "true"):
            return
        models = method.properties.get("RequestModels") or {}
        model = models.get(request.content_type) or models.get(JSON)
        schema = api.models.get(str(model)) if model else None
        if schema is None:
            return
        import jsonschema

        try:
            document = json.loads(request.body or b"null")
        except ValueError as error:
            raise _Failure(
                "BAD_REQUEST_BODY", validationErrorString=f"[Invalid JSON: {error}]"
            ) from None
        validator_type = jsonschema.validators.validator_for(schema, jsonschema.Draft4Validator)
        errors = sorted(
            validator_type(schema).iter_errors(document), key=lambda e: list(e.absolute_path)
        )
        if errors:
            messages = [_describe(error) for error in errors]
            raise _Failure("BAD_REQUEST_BODY", validationErrorString=f"[{', '.join(messages)}]")

    # -- integrations -------------------------------------------------------------------

    def _integrate(self, api: RestApi, method: _Method, request: _Request) -> ApiResponse:
        integration = method.properties.get("Integration") or {}
        kind = str(integration.get("Type", "MOCK")).upper()
        uri = str(integration.get("Uri", ""))
        if kind == "AWS_PROXY":
            return self._lambda_proxy(api, method, request, uri)
        if kind not in ("AWS", "MOCK"):
            raise _Failure("DEFAULT_5XX", f"{kind} integrations are not served by the sandbox")
        rendered = _request_template(integration, request)
        if kind == "MOCK":
            try:
                status = int(json.loads(rendered or "{}").get("statusCode", 200))
            except (ValueError, AttributeError):
                raise _Failure("DEFAULT_5XX") from None
            return _integration_response(integration, status, str(status), b"", request)
        # arn:aws:apigateway:<region>:<service>:<action/X | path/…>
        service, target = uri.split(":", 5)[4:6] if uri.count(":") >= 5 else ("", "")
        if service == "lambda":
            return self._lambda(integration, request, target, rendered)
        status, backend = self._aws_call(integration, service, target, rendered)
        return _integration_response(integration, status, str(status), backend, request)

    def _aws_call(
        self, integration: Mapping[str, Any], service: str, target: str, rendered: str
    ) -> tuple[int, bytes]:
        """The service action, through boto3: (HTTP status, JSON body as AWS answers it)."""
        from botocore.exceptions import ClientError, ParamValidationError

        params: dict[str, Any]
        try:
            params = json.loads(rendered) if rendered.strip() else {}
        except ValueError:
            params = dict(parse_qsl(rendered))
        action = _action(integration, target, params)
        if not service or not action:
            raise _Failure("DEFAULT_5XX", f"cannot tell the {service!r} action of the integration")
        if service == "sqs" and "QueueUrl" not in params and target.startswith("path/"):
            account, _, queue = target.removeprefix("path/").partition("/")
            if queue:
                params["QueueUrl"] = self.client("sqs").get_queue_url(
                    QueueName=queue, QueueOwnerAWSAccountId=account
                )["QueueUrl"]
        try:
            response = self.client(service)._make_api_call(action, params)
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            detail = error.response.get("Error", {})
            body = {"__type": detail.get("Code", ""), "message": detail.get("Message", "")}
            return status, json.dumps(body).encode()
        except ParamValidationError as error:
            body = {"__type": "ValidationException", "message": str(error)}
            return 400, json.dumps(body).encode()
        response.pop("ResponseMetadata", None)
        return 200, json.dumps(response, default=_json_default).encode()

    def _function(self, arn_path: str) -> Any:
        match = re.search(r"functions/(?P<arn>arn:[^/]+)/invocations", arn_path)
        if self._runtime is None or match is None:
            raise _Failure("DEFAULT_5XX", "the Lambda integration has no function in the sandbox")
        return match["arn"]

    def _lambda(
        self, integration: Mapping[str, Any], request: _Request, target: str, rendered: str
    ) -> ApiResponse:
        function = self._function(target)
        try:
            event = json.loads(rendered) if rendered.strip() else {}
        except ValueError:
            raise _Failure("DEFAULT_5XX") from None
        result = self._invoke(function, event)
        if result.error is not None:
            body = json.dumps(result.error.payload(result.request_id)).encode()
            return _integration_response(integration, 200, result.error.message, body, request)
        return _integration_response(
            integration, 200, "", json.dumps(result.response).encode(), request
        )

    def _invoke(self, function: str, event: Any) -> Any:
        try:
            return self._runtime.invoke(function, event)
        except KeyError:
            raise _Failure("DEFAULT_5XX", f"no function {function} in the sandbox") from None

    def _lambda_proxy(
        self, api: RestApi, method: _Method, request: _Request, uri: str
    ) -> ApiResponse:
        function = self._function(uri)
        result = self._invoke(function, _proxy_event(api, method, request))
        response = result.response
        if result.error is not None or not isinstance(response, dict):
            raise _Failure("DEFAULT_5XX")
        try:
            status = int(response.get("statusCode", 200))
        except (TypeError, ValueError):
            raise _Failure("DEFAULT_5XX") from None
        body = response.get("body") or ""
        raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(v) for v in values)
        headers.setdefault("Content-Type", JSON)
        return ApiResponse(status, headers, raw)


@dataclass
class _Request:
    http_method: str
    stage: str
    path: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", JSON).split(";", 1)[0].strip() or JSON

    def parameter(self, name: str) -> str | None:
        """``method.request.{header,querystring,path}.X``."""
        _, _, where, key = [*name.split(".", 3), "", "", "", ""][:4]
        if where == "header":
            return self.headers.get(key.lower())
        if where == "querystring":
            return self.query.get(key)
        if where == "path":
            return self.path_params.get(key)
        return None

    def params(self) -> dict[str, str]:
        """``$input.params(name)``: path, then query string, then header."""
        headers = {k.title(): v for k, v in self.headers.items()}
        return {**self.headers, **headers, **self.query, **self.path_params}


def _route(api: RestApi, request: _Request) -> tuple[_Method, dict[str, str]]:
    candidates = []
    for method in api.methods:
        params = _match_path(method.path, request.path)
        if params is not None and method.http_method in (request.http_method, "ANY"):
            exact = method.http_method == request.http_method
            literal = sum(1 for part in method.path.split("/") if not part.startswith("{"))
            candidates.append(((literal, exact), method, params))
    if not candidates:
        raise _Failure("MISSING_AUTHENTICATION_TOKEN")
    _, method, params = max(candidates, key=lambda c: c[0])
    return method, params


def _match_path(pattern: str, path: str) -> dict[str, str] | None:
    wanted = [p for p in pattern.split("/") if p]
    given = [p for p in path.split("/") if p]
    params: dict[str, str] = {}
    for index, part in enumerate(wanted):
        if part.startswith("{") and part.endswith("+}"):
            if index >= len(given):
                return None
            params[part[1:-2]] = "/".join(given[index:])
            return params
        if index >= len(given):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = given[index]
        elif part != given[index]:
            return None
    return params if len(wanted) == len(given) else None


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at /{where})" if where else str(error.message)


def _action(integration: Mapping[str, Any], target: str, params: dict[str, Any]) -> str:
    if target.startswith("action/"):
        return target.removeprefix("action/").split("&", 1)[0]
    header = (integration.get("RequestParameters") or {}).get(
        "integration.request.header.X-Amz-Target", ""
    )
    if isinstance(header, str) and header.startswith("'"):
        return header.strip("'").rsplit(".", 1)[-1]
    return str(params.pop("Action", ""))


def _request_template(integration: Mapping[str, Any], request: _Request) -> str:
    templates = integration.get("RequestTemplates") or {}
    template = templates.get(request.content_type)
    body = request.body.decode(errors="replace")
    if template is None:
        behaviour = str(integration.get("PassthroughBehavior", "WHEN_NO_MATCH"))
        if behaviour == "NEVER" or (behaviour == "WHEN_NO_TEMPLATES" and templates):
            raise _Failure("UNSUPPORTED_MEDIA_TYPE")
        return body
    rendered, _ = render(str(template), body, request.params(), _context(request))
    return rendered


def _integration_response(
    integration: Mapping[str, Any],
    status: int,
    selector: str,
    backend: bytes,
    request: _Request,
) -> ApiResponse:
    responses = integration.get("IntegrationResponses") or []
    default = next((r for r in responses if not r.get("SelectionPattern")), None)
    chosen = next(
        (
            r
            for r in responses
            if r.get("SelectionPattern")
            and re.fullmatch(str(r["SelectionPattern"]), selector, flags=re.DOTALL)
        ),
        default,
    )
    if chosen is None:
        if 200 <= status < 300:
            return ApiResponse(status, {"Content-Type": JSON}, backend)
        raise _Failure("DEFAULT_5XX")
    template = (chosen.get("ResponseTemplates") or {}).get(JSON)
    headers = {"Content-Type": JSON}
    body = backend
    code = int(chosen.get("StatusCode", 200))
    if template is not None:
        rendered, context = render(
            str(template), backend.decode(errors="replace"), request.params(), _context(request)
        )
        body = rendered.encode()
        override = context.get("responseOverride", {}).get("status")
        if override:
            code = int(override)
    for name, value in (chosen.get("ResponseParameters") or {}).items():
        if name.startswith("method.response.header.") and str(value).startswith("'"):
            headers[name.removeprefix("method.response.header.")] = str(value).strip("'")
    return ApiResponse(code, headers, body)


def _context(request: _Request, error: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "requestId": request.request_id,
        "httpMethod": request.http_method,
        "stage": request.stage,
        "error": error or {},
    }


def _gateway_response(api: RestApi, failure: _Failure, request: _Request) -> ApiResponse:
    status, _ = DEFAULTS.get(failure.kind, (500, ""))
    family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
    props = api.gateway_responses.get(failure.kind) or api.gateway_responses.get(family) or {}
    if failure.kind in api.gateway_responses and props.get("StatusCode"):
        status = int(props["StatusCode"])
    # As API Gateway documents them: messageString is the message quoted as a JSON string,
    # validationErrorString is escaped to sit inside a JSON string.
    error = {
        "message": failure.message,
        "messageString": json.dumps(failure.message),
        "responseType": failure.kind,
        "validationErrorString": _escape(failure.context.get("validationErrorString", "")),
    }
    template = (props.get("ResponseTemplates") or {}).get(JSON)
    if template is None:
        body = json.dumps({"message": failure.message}).encode()
    else:
        rendered, _ = render(str(template), "", request.params(), _context(request, error))
        body = rendered.encode()
    headers = {"Content-Type": JSON}
    for name, value in (props.get("ResponseParameters") or {}).items():
        if name.startswith("gatewayresponse.header.") and str(value).startswith("'"):
            headers[name.removeprefix("gatewayresponse.header.")] = str(value).strip("'")
    return ApiResponse(status, headers, body)


def _escape(text: str) -> str:
    return json.dumps(text)[1:-1]


def _proxy_event(api: RestApi, method: _Method, request: _Request) -> dict[str, Any]:
    body = request.body.decode(errors="replace") if request.body else None
    return {
        "resource": method.path,
        "path": request.path,
        "httpMethod": request.http_method,
        "headers": {k.title(): v for k, v in request.headers.items()},
        "multiValueHeaders": {k.title(): [v] for k, v in request.headers.items()},
        "queryStringParameters": request.query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in request.query.items()} or None,
        "pathParameters": request.path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": method.path,
            "httpMethod": request.http_method,
            "path": f"/{request.stage}{request.path}",
            "stage": request.stage,
            "requestId": request.request_id,
            "apiId": api.id,
            "identity": {"sourceIp": "127.0.0.1", "apiKey": request.headers.get("x-api-key")},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
