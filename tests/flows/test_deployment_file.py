"""flows/prefect.yaml: its deployment points at the real flow, and its parameters are ones the flow accepts."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployment_entrypoint_loads_and_its_parameters_validate():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    assert flow.name == "screen-dxa-registry"
    request = flow.validate_parameters(deployment["parameters"])["request"]
    assert request.scans == ["/data/exports/scans/"] and request.as_of == ""
    assert deployment["work_pool"]["name"] and deployment["schedules"][0]["cron"]
