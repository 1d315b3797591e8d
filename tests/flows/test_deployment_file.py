"""flows/prefect.yaml: its deployment points at the real flow, and its parameters are ones the flow accepts.
(tests/flows/test_serve.py deploys it on a real server and waits for its scheduled run.)"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployment_entrypoint_loads_and_its_parameters_validate():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    assert flow.name == "screen-dxa-registry"
    parameters = flow.validate_parameters(deployment["parameters"])
    request = parameters["request"]
    assert request.scans == ["/data/exports/scans/"] and request.as_of == ""
    assert deployment["work_pool"]["name"] and deployment["schedules"][0]["cron"]


def test_the_schedule_and_each_runs_as_of_date_share_one_iana_time_zone():
    """Issue 28 §2: the schedule had no time zone of its own (UTC); the runs' as-of date is their day in it."""
    import zoneinfo

    spec = yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    (schedule,) = deployment["schedules"]
    assert schedule["timezone"] in zoneinfo.available_timezones()
    assert deployment["parameters"]["timezone"] == schedule["timezone"]
    assert all(Path(p).is_absolute() for p in deployment["parameters"]["request"]["scans"])
