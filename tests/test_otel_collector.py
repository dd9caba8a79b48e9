"""config/otel/collector.yaml, checked as far as this machine allows without a collector binary: its YAML, the
pipelines' wiring, and each component's keys against what its otelcol-contrib documentation accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.config import Settings

CONFIG = Path(__file__).resolve().parents[1] / "config" / "otel" / "collector.yaml"
# The otelcol-contrib components the file uses, and the top-level keys each accepts (their READMEs).
KNOWN: dict[str, dict[str, set[str]]] = {
    "extensions": {
        "health_check": {"endpoint", "path", "tls"},
        "sigv4auth": {"region", "service", "assume_role"},
    },
    "receivers": {"otlp": {"protocols"}},
    "processors": {
        "memory_limiter": {
            "check_interval",
            "limit_mib",
            "spike_limit_mib",
            "limit_percentage",
            "spike_limit_percentage",
        },
        "resourcedetection": {"detectors", "timeout", "override"},
        "batch": {"timeout", "send_batch_size", "send_batch_max_size"},
    },
    "exporters": {
        "prometheus": {"endpoint", "namespace", "resource_to_telemetry_conversion", "send_timestamps"},
        "awsemf": {
            "namespace",
            "log_group_name",
            "log_stream_name",
            "dimension_rollup_option",
            "resource_to_telemetry_conversion",
            "metric_declarations",
            "region",
        },
        "otlphttp": {"endpoint", "traces_endpoint", "metrics_endpoint", "auth", "headers", "compression"},
    },
}


def config() -> dict[str, Any]:
    loaded = yaml.safe_load(CONFIG.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_component_is_one_otelcol_contrib_has_with_keys_it_accepts() -> None:
    for section, known in KNOWN.items():
        for name, settings in config()[section].items():
            kind = name.split("/", 1)[0]  # "otlphttp/xray" is an otlphttp exporter named xray
            assert kind in known, (section, name)
            assert set(settings or {}) <= known[kind], (section, name)


def test_the_pipelines_use_only_defined_components_and_every_defined_one_is_used() -> None:
    loaded = config()
    pipelines = loaded["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for section in ("receivers", "processors", "exporters"):
        used = {name for pipeline in pipelines.values() for name in pipeline[section]}
        assert used == set(loaded[section]), section
    assert set(loaded["service"]["extensions"]) == set(loaded["extensions"])
    assert loaded["exporters"]["otlphttp/xray"]["auth"]["authenticator"] in loaded["extensions"]


def test_otlp_comes_in_on_the_standard_ports_and_metrics_go_to_prometheus_and_cloudwatch() -> None:
    loaded = config()
    protocols = loaded["receivers"]["otlp"]["protocols"]
    assert (protocols["http"]["endpoint"], protocols["grpc"]["endpoint"]) == ("0.0.0.0:4318", "0.0.0.0:4317")
    assert loaded["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus", "awsemf"]
    assert loaded["service"]["pipelines"]["traces"]["processors"][0] == "memory_limiter"  # first, as advised


def test_cloudwatch_gets_the_namespace_and_dimensions_of_the_emf_lines() -> None:
    """The awsemf exporter writes what the workers' own EMF lines would: METRICS_NAMESPACE and
    METRICS_DIMENSIONS at their defaults, every metric selected."""
    defaults = Settings(queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    awsemf = config()["exporters"]["awsemf"]
    assert awsemf["namespace"] == defaults.metrics_namespace
    [declaration] = awsemf["metric_declarations"]
    assert declaration["dimensions"] == [sorted(defaults.metrics_dimensions)]
    assert declaration["metric_name_selectors"] == [".*"]
