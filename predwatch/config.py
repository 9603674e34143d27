"""One validated settings model, read from a YAML file with ``PREDWATCH_*`` environment overrides.

Environment variables override the file key by key; nested keys are joined with
``__``: ``PREDWATCH_JOIN__GRACE=30s`` overrides ``join.grace``.

>>> settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
>>> settings.join.label_timeout, settings.models["fraud"].positive_label
(3600.0, '1')
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from predwatch.alerts.settings import AlertSettings, check_alerts
from predwatch.diagnostics.settings import DiagnosticsSettings
from predwatch.drift.settings import DriftSettings
from predwatch.durations import Duration
from predwatch.limits import LimitsSettings
from predwatch.redact import MASK, redact

Task = Literal["binary", "multiclass", "regression"]
ENV_PREFIX = "PREDWATCH_"
ENV_DELIMITER = "__"


def class_key(value: object) -> str:
    """The canonical spelling of a class label, so that ``1``, ``1.0``, ``"1"`` and ``True`` agree.

    >>> [class_key(v) for v in (1, 1.0, "1", True, "cat", 2.5)]
    ['1', '1', '1', '1', 'cat', '2.5']
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _optional_class_key(value: object) -> str | None:
    return None if value is None else class_key(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Section):
    """How one model's predictions are scored."""

    task: Task
    positive_label: Annotated[str, BeforeValidator(class_key)] = "1"
    # A binary model's other class; a label that is neither is invalid. "0" by default when
    # the positive class is "1"; with no negative class, any other class counts as negative.
    negative_label: Annotated[str | None, BeforeValidator(_optional_class_key)] = None

    @property
    def classes(self) -> tuple[str, str] | None:
        """A binary model's two classes, positive first; None when any class is accepted."""
        if self.task != "binary":
            return None
        negative = self.negative_label
        if negative is None and self.positive_label == "1":
            negative = "0"
        return None if negative is None else (self.positive_label, negative)


class JoinSettings(_Section):
    """Event-time join of predictions and labels."""

    label_timeout: Duration = 3600.0
    grace: Duration = 60.0
    idle_timeout: Duration = 60.0
    expired_id_memory: int = Field(default=1_000_000, ge=0)
    # Pending predictions a partition keeps at most (0: no cap); beyond, the oldest are evicted.
    max_pending: int = Field(default=0, ge=0)


class FieldNames(_Section):
    """Names of the wire-format fields, for producers that spell them differently."""

    prediction_id: str = "prediction_id"
    model: str = "model"
    model_version: str = "model_version"
    timestamp: str = "timestamp"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    probabilities: str = "probabilities"
    tags: str = "tags"
    label: str = "label"


class WindowSettings(_Section):
    """A metric window: the last ``events`` matched pairs, or the last ``duration`` of event
    time."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    events: int | None = Field(default=None, gt=0)
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_size(self) -> WindowSettings:
        if (self.events is None) == (self.duration is None):
            raise ValueError("give exactly one of 'events' (a count) or 'duration' (event time)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("'duration' must be positive")
        return self


def _default_windows() -> list[WindowSettings]:
    return [
        WindowSettings(name="last_1000", events=1000),
        WindowSettings(name="1h", duration=3600.0),
    ]


class HistorySettings(_Section):
    """The history of closed event-time windows kept per model version and metric, and the
    control band drawn over it: mean ± ``sigmas`` standard deviations of the windows before
    the latest (which needs at least 3 of them, so ``keep`` is at least 4)."""

    window: Duration = Field(default=3600.0, gt=0)
    keep: int = Field(default=48, ge=4)
    sigmas: float = Field(default=3.0, gt=0)


class MetricSettings(_Section):
    """Which windows and tag splits quality metrics are kept for, and their history."""

    windows: list[WindowSettings] = Field(default_factory=_default_windows)
    tags: list[str] = Field(default_factory=list)
    max_tag_values: int = Field(default=20, gt=0)
    max_versions: int = Field(default=20, gt=0)  # per model; further versions count as "other"
    max_classes: int = Field(default=50, gt=1)  # per model; further classes count as "other"
    history: HistorySettings = Field(default_factory=HistorySettings)

    @model_validator(mode="after")
    def _unique_windows(self) -> MetricSettings:
        names = [w.name for w in self.windows]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"window names must be unique; repeated: {', '.join(repeated)}")
        if "cumulative" in names:
            raise ValueError("'cumulative' is always kept; choose another window name")
        return self


class KafkaSettings(_Section):
    """The Kafka cluster and topics to consume, and client security settings.

    Secrets (``sasl_plain_password``, ``ssl_password``) are best given by
    environment, e.g. ``PREDWATCH_KAFKA__SASL_PLAIN_PASSWORD``; they are never logged.
    ``client`` passes any other kafka-python consumer setting through unchanged.
    """

    bootstrap_servers: str = "localhost:9092"  # comma-separated host:port list
    group_id: str = "predwatch"
    client_id: str = "predwatch"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    dead_letter_topic: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"  # a new group's start
    max_poll_records: int = Field(default=5000, gt=0)
    session_timeout: Duration = 10.0
    client: dict[str, Any] = Field(default_factory=dict)


class HttpSettings(_Section):
    """Where /metrics, /healthz and /readyz are served. Loopback only unless configured.

    ``token`` (best from the environment, ``PREDWATCH_HTTP__TOKEN``) or the first line of
    the file ``token_file``, when set, is the bearer token ``/status`` and ``/`` require;
    ``/metrics`` and the probes stay open. It is never logged.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: str | None = None

    @model_validator(mode="after")
    def _one_token(self) -> HttpSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set either http.token or http.token_file, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("http.token is empty: set a token or remove the key")
        return self


class StateSettings(_Section):
    """Checkpoints of the monitor's state and the offsets it reflects (off without ``dir`` and
    ``topic``).

    ``topic``: a Kafka topic where each input partition's state (its join and outcome counts)
    is checkpointed, so that it moves with the partition to whichever instance of the group
    takes it over. ``dir``: a local directory for this instance's whole state.
    """

    dir: str | None = None  # a directory only this instance writes; None: no checkpoints
    topic: str | None = None  # a topic the group's instances share; None: partition state stays
    checkpoint_every: Duration = Field(default=10.0, gt=0.0)


class Settings(BaseSettings):
    """All of predwatch's settings. Only ``models`` is required."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid", frozen=True
    )

    models: dict[str, ModelSettings] = Field(min_length=1)
    join: JoinSettings = Field(default_factory=JoinSettings)
    fields: FieldNames = Field(default_factory=FieldNames)
    metrics: MetricSettings = Field(default_factory=MetricSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    diagnostics: DiagnosticsSettings = Field(default_factory=DiagnosticsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    state: StateSettings = Field(default_factory=StateSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init values.
        return env_settings, init_settings, file_secret_settings


class ConfigError(Exception):
    """A configuration problem a user can fix; ``problems`` holds one sentence each, and
    ``sources`` where each came from: the file, or the environment variable at fault."""

    def __init__(self, source: str, problems: list[str], sources: list[str] | None = None) -> None:
        self.source = source
        self.problems = problems
        self.sources = sources if sources is not None else [source] * len(problems)
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, as ``check-config`` prints them: ``source: key.path: ...``."""
        pairs = zip(self.sources, self.problems, strict=True)
        return [f"{where}: {problem}" for where, problem in pairs]


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML config file, applying ``PREDWATCH_*`` overrides.

    Raises ``ConfigError`` listing every problem found, each naming its key path.
    """
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(source, [f"not valid YAML{line}: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping of keys such as 'models'"])
    return settings_from_mapping(data, source)


# The sections the alert rules are checked against: with one of them invalid, they cannot be.
_RULE_CONTEXT = frozenset({"models", "metrics", "alerts"})


def settings_from_mapping(data: dict[str, Any], source: str = "config") -> Settings:
    """Validate an already parsed config mapping; see ``load_settings``.

    Every problem is reported at once: those of the values, then those of the alert rules
    against the models, windows and tags (checked whenever those sections are valid).
    """
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [_describe(error) for error in errors]
        sources = [_origin(error["loc"], source) for error in errors]
        failing = {str(error["loc"][0]) for error in errors if error["loc"]}
        partial = None if failing & _RULE_CONTEXT else _without(data, failing)
        if partial is not None:
            alerts = check_alerts(partial.alerts, partial)
            problems += alerts
            sources += [source] * len(alerts)
        raise ConfigError(source, problems, sources) from None
    except SettingsError as exc:
        # A PREDWATCH_* variable of a structured setting that is not valid JSON.
        raise _environment_error(exc) from None
    problems = check_alerts(settings.alerts, settings)
    if problems:
        raise ConfigError(source, problems)
    return settings


def _without(data: dict[str, Any], keys: set[str]) -> Settings | None:
    """The settings without the sections ``keys`` (their defaults instead), or None when
    they are invalid all the same (an environment variable at fault in one of them)."""
    try:
        return Settings(**{k: v for k, v in data.items() if k not in keys})
    except (ValidationError, SettingsError):
        return None


def _variables() -> dict[str, str]:
    """The ``PREDWATCH_*`` environment variables, by upper-case name (as pydantic-settings
    matches them) to their name as set."""
    return {name.upper(): name for name in os.environ if name.upper().startswith(ENV_PREFIX)}


def _origin(loc: tuple[Any, ...], source: str) -> str:
    """Where the value at ``loc`` came from: the environment variable that sets it (or one
    of its parents, as JSON), which wins over the file, else the file ``source``.

    >>> import os
    >>> os.environ["PREDWATCH_JOIN__GRACE"] = "-5m"
    >>> _origin(("join", "grace"), "c.yaml"), _origin(("join", "label_timeout"), "c.yaml")
    ('environment variable PREDWATCH_JOIN__GRACE', 'c.yaml')
    >>> del os.environ["PREDWATCH_JOIN__GRACE"]
    """
    variables = _variables()
    parts = [str(part) for part in loc]
    for n in range(len(parts), 0, -1):
        name = variables.get(ENV_PREFIX + ENV_DELIMITER.join(parts[:n]).upper())
        if name is not None:
            return f"environment variable {name}"
    return source


def _environment_error(exc: SettingsError) -> ConfigError:
    """Name the variable(s) whose JSON pydantic-settings could not parse."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1).upper() if found else ""
    candidates = [
        name
        for upper, name in sorted(_variables().items())
        if field and (upper == ENV_PREFIX + field or upper.startswith(ENV_PREFIX + field + "__"))
    ]
    unparsed = [name for name in candidates if not _is_json(os.environ[name])]
    # Most likely at fault: a value meant as JSON that does not parse, then any that does not.
    meant = [name for name in unparsed if os.environ[name].lstrip().startswith(("{", "["))]
    names = meant or unparsed or candidates
    if not names:
        return ConfigError("environment", [f"{exc}; give that variable as JSON"])
    problem = (
        "is not valid JSON: a variable that sets a list or a mapping takes JSON, "
        'e.g. \'{"key": "value"}\' or \'["a", "b"]\''
    )
    return ConfigError(
        "environment", [problem] * len(names), [f"environment variable {n}" for n in names]
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _describe(error: Any) -> str:
    """One "key.path: sentence" for a pydantic error, with every secret in it masked.

    A message may quote the value given (e.g. a bad URL, with its password and
    token); at a secret key (a password, a secret, a header) any quote of the
    value is masked whole, and every URL's credentials, path and query anywhere.
    """
    path = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        message = f"must be one of {', '.join(choices)}"
    elif kind == "extra_forbidden":
        message = "is not a known key; remove it or check its spelling"
    elif kind == "missing":
        message = "is required"
    elif kind == "too_short" and error["loc"] == ("models",):
        message = "needs at least one model, e.g. 'models: {fraud: {task: binary}}'"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
        given = error.get("input")
        if _secret_key(error["loc"]) and isinstance(given, str | int | float):
            if len(str(given)) < 4 and str(given) in message:  # too short to mask alone
                message = "is not valid (the value is not shown: this key holds a secret)"
            message = message.replace(str(given), MASK)
    return f"{path}: {redact(message)}"


_SECRET_PARTS = ("password", "secret", "token", "headers", "key")


def _secret_key(loc: tuple[Any, ...]) -> bool:
    """Whether a key path names a secret (``kafka.ssl_password``, ``webhooks.0.headers.X``)."""
    return any(part in str(name).lower() for name in loc for part in _SECRET_PARTS)
