"""CareLoop's services, as the supervisor starts them, and `python -m bot.ops.services` (make run)."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.ops.supervisor import RestartPolicy, Service, Supervisor
from bot.settings import PROJECT_ROOT, Settings

VENVS = PROJECT_ROOT / ".venvs"


def rasa_service(settings: Settings, model: Path) -> Service:
    return Service(
        name="rasa",
        argv=[
            # `rasa run --auth-token`, the token passed through the environment (not visible in ps)
            str(VENVS / "rasa" / "bin" / "python"),
            str(PROJECT_ROOT / "bot" / "ops" / "rasa_run.py"),
            "--enable-api",
            "--model",
            str(model),
            "--endpoints",
            str(PROJECT_ROOT / "endpoints.yml"),
            "--credentials",
            str(PROJECT_ROOT / "credentials.yml"),
            "--interface",
            "127.0.0.1",
            "--port",
            str(settings.rasa_port),
        ],
        url=settings.rasa_url,
        # Rasa checks its auth token as a query parameter (a Bearer header means JWT to it).
        health_url=f"{settings.rasa_url}/status?token={settings.rasa_token}",
        description="Rasa server: NLU and dialogue, HTTP API (token: RASA_TOKEN in .env)",
        env={
            # to_env() carries RASA_CHANNEL_SECRET (credentials.yml: the gateway's channel) and
            # ACTION_SERVER_TOKEN (endpoints.yml: what Rasa shows the action server).
            **settings.to_env(),
            "ACTION_ENDPOINT_URL": settings.action_endpoint_url,
            "RASA_TRACKER_DB": str(settings.rasa_tracker_db),
            # Rasa imports our channel (bot.rasa_channel) and NLU components whatever its cwd.
            "PYTHONPATH": str(PROJECT_ROOT),
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "RASA_TELEMETRY_ENABLED": "false",
        },
    )


def app_service(settings: Settings, *, name: str, module: str, url: str, description: str) -> Service:
    """One of our own services: `python -m <module>` in the app environment, healthy at `<url>/health`."""
    return Service(
        name=name,
        argv=[str(VENVS / "app" / "bin" / "python"), "-m", module],
        url=url,
        health_url=f"{url}/health",
        description=description,
        env={**settings.to_env(), "PYTHONPATH": str(PROJECT_ROOT)},
    )


def careloop_services(settings: Settings, model: Path) -> list[Service]:
    """Every service CareLoop runs, in start order (actions first: Rasa calls them; the gateway
    after Rasa: it forwards to Rasa; the scheduler last: it sends through the gateway)."""
    return [
        app_service(
            settings,
            name="actions",
            module="bot.ops.action_server",
            url=settings.action_server_url,
            description="action server: custom actions, writes to the CRM",
        ),
        rasa_service(settings, model),
        app_service(
            settings,
            name="gateway",
            module="bot.gateway",
            url=settings.gateway_url,
            description="gateway: web chat, Telegram, internal API (the only door for customers)",
        ),
        app_service(
            settings,
            name="scheduler",
            module="scheduler.service",
            url=settings.scheduler_url,
            description="scheduler: check-ins and campaigns through the policy gate",
        ),
    ]


def restart_policy(settings: Settings) -> RestartPolicy:
    """How `make run` restarts a service that exits, and when it gives up (SUPERVISOR_* settings)."""
    return RestartPolicy(
        limit=settings.supervisor_restart_limit,
        window=settings.supervisor_restart_window_seconds,
        backoff=settings.supervisor_backoff_seconds,
        backoff_max=settings.supervisor_backoff_max_seconds,
    )


def describe(settings: Settings, services: list[Service]) -> str:
    rows = [f"  {s.name:<10} {s.url:<26} {s.description}" for s in services]
    if any(s.name == "gateway" for s in services):
        rows.append(f"  {'shop':<10} {settings.gateway_url + '/':<26} demo shop page with the chat widget")
        console = settings.gateway_url + "/console"
        rows.append(f"  {'console':<10} {console:<26} agent console and admin pages (logins: README)")
        mode = "webhook" if settings.telegram_webhook_url else "long polling"
        telegram = f"on ({mode})" if settings.telegram_bot_token else "off (set TELEGRAM_BOT_TOKEN in .env)"
        rows.append(f"  {'telegram':<10} {telegram}")
    crm = settings.database_url.split("@")[-1]  # never print a password
    return "\n".join(
        [
            "",
            "CareLoop is running:",
            *rows,
            f"  {'crm':<10} {crm}",
            f"  {'logs':<10} {settings.var_dir / 'logs'}",
            "Press Ctrl-C to stop everything.",
            "",
        ]
    )


def main() -> None:
    from bot.bootstrap import bootstrap
    from bot.ops.model import model_path

    settings = bootstrap(command=True)
    model = model_path(settings.models_dir)
    if not model.exists():
        sys.exit(f"no model at {model}: run `make run` (it trains when the data changed)")
    services = careloop_services(settings, model)
    supervisor = Supervisor(services, settings.var_dir / "logs", policy=restart_policy(settings))
    sys.exit(supervisor.run(lambda: describe(settings, services)))


if __name__ == "__main__":
    main()
