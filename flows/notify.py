"""Have Prefect tell someone when a scheduled screen fails: a webhook and an automation on the deployment.

    .venv/bin/python -m flows.notify --deployment screen-dxa-registry/weekly --webhook https://hooks.example.org/…

Saves a ``CustomWebhookNotificationBlock`` (posts ``{"text": "<subject>\\n<body>"}``, as Slack's and
Mattermost's incoming webhooks take it) and an automation that fires on every run of that deployment ending
Failed or Crashed: a refused screen, a missing or unusable input, an engine failure. The notification says the
run's name and its state's one-line message (a file name or counts, never a cell of an input). Run it again to
change the webhook: the block and the automation are replaced, not duplicated. Needs ``PREFECT_API_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from flows.logging_quiet import configure_prefect_env

configure_prefect_env()

SUBJECT = "osteo-screen: {{ flow_run.name }} ended {{ flow_run.state.name }}"
BODY = (
    "Run '{{ flow_run.name }}' of {{ flow.name }}/{{ deployment.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}"
)
FAILED_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")


class Refused(Exception):
    """An argument or the server's answer that stops the set-up (exit 2, one line)."""


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.notify",
        description="Post to a webhook whenever a run of the deployment fails or crashes (a Prefect automation).",
    )
    parser.add_argument("--deployment", required=True, metavar="FLOW/NAME", help="e.g. screen-dxa-registry/weekly")
    parser.add_argument("--webhook", required=True, metavar="URL", help="https URL that takes a JSON POST")
    return parser.parse_args(argv)


async def set_up(deployment_name: str, webhook: str) -> tuple[str, str]:
    """Save the webhook block and the automation (replacing those of an earlier call); returns their names."""
    from prefect.automations import Automation, EventTrigger, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    if urlparse(webhook).scheme not in ("http", "https") or not urlparse(webhook).netloc:
        raise Refused(f"--webhook: '{webhook}' is not an http(s) URL")
    flow_name, _, name = deployment_name.partition("/")
    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(deployment_name)
        except ObjectNotFound:
            raise Refused(
                f"--deployment: no deployment '{deployment_name}' on {os.environ['PREFECT_API_URL']} "
                "(register it first: osteo serve, or prefect deploy)"
            ) from None
        slug = f"osteo-{flow_name}-{name}-failed".lower().replace("_", "-")
        block = CustomWebhookNotificationBlock(name=slug, url=webhook, json_data={"text": "{{subject}}\n{{body}}"})
        block_id = await block.asave(slug, overwrite=True, client=client)
        automation_name = f"osteo: {deployment_name} failed"
        for old in await client.read_automations_by_name(automation_name):
            await client.delete_automation(old.id)
    await Automation(
        name=automation_name,
        description=f"Posts to the webhook block '{slug}' when a run of {deployment_name} fails or crashes",
        trigger=EventTrigger(
            expect=set(FAILED_EVENTS),
            match_related={"prefect.resource.id": f"prefect.deployment.{deployment.id}"},
            posture="Reactive",
            threshold=1,
            within=0,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).acreate()
    return automation_name, slug


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if not os.environ.get("PREFECT_API_URL"):
        print("flows.notify: PREFECT_API_URL: set it to the Prefect server of the deployment", file=sys.stderr)
        return 2
    try:
        automation, block = asyncio.run(set_up(args.deployment, args.webhook))
    except Refused as err:
        print(f"flows.notify: {err}", file=sys.stderr)
        return 2
    print(
        f"automation '{automation}': each run of {args.deployment} that fails or crashes posts its state's message"
        f" to the webhook block '{block}' (prefect automation inspect '{automation}')"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
