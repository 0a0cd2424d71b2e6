"""`kumiki audit verify` and `kumiki audit export`: check the hash chain, write the log to a file.

``verify`` exits 0 with an "OK" line, or 1 naming the first broken entry and why (edited,
deleted, moved, added outside kumiki). There is deliberately no command that changes the log.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from kumiki import audit, i18n
from kumiki.cli import CliError, CliState, main, pass_state

EXIT_TAMPERED = 1

i18n.register({
    "cli.audit.exported": ("監査ログ {count} 件を {path} に書き出しました。", "Wrote {count} audit entries to {path}."),
})


@main.group("audit")
def audit_group() -> None:
    """監査ログを検証・書き出しします / verify and export the audit log."""


@audit_group.command("verify")
@pass_state
def audit_verify(state: CliState) -> None:
    """ハッシュの連鎖を検証します（改ざんがあれば終了コード 1） / verify the hash chain (exit 1 if tampered)."""
    with state.session() as session:
        result = audit.verify(session)
    if not result.ok:
        raise CliError([state.t("audit.broken", count=result.count), result.message(state.lang)],
                       exit_code=EXIT_TAMPERED)
    click.echo(result.message(state.lang))


@audit_group.command("export")
@click.option("--format", "fmt", type=click.Choice(audit.FORMATS), default="csv", show_default=True,
              help="形式 / format")
@click.option("--encoding", type=click.Choice(["utf-8", "cp932"]), default="utf-8", show_default=True,
              help="CSV の文字コード（utf-8 は BOM 付き） / CSV encoding (utf-8 with BOM)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="書き出すファイル（省略時は標準出力） / output file (default: standard output)")
@click.option("--user", default=None, help="ログイン名 / user code")
@click.option("--app-id", type=int, default=None)
@click.option("--record-id", type=int, default=None)
@click.option("--action", default=None, help="例 record.view、record.* / e.g. record.view, record.*")
@click.option("--since", default=None, help="開始日（日時） / from this date or time (inclusive)")
@click.option("--until", default=None, help="終了日（日時） / up to this date or time (inclusive)")
@pass_state
def audit_export(state: CliState, fmt: str, encoding: str, output: Path | None, **filters) -> None:
    """監査ログを古い順に書き出します / export the audit log, oldest first."""
    tz = state.get_config().timezone
    with state.session() as session:
        chunks = audit.export(session, fmt, encoding=encoding, tz=tz, **filters)
        _entries, total = audit.query(session, limit=1, tz=tz, **filters)
        audit.log(state.engine, "audit.export", detail={
            "via": "cli", "format": fmt, "encoding": encoding, "count": total,
            "filters": {k: v for k, v in filters.items() if v is not None}})
        if output is None:
            out = sys.stdout.buffer
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            return
        try:
            with output.open("wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        except OSError as exc:
            raise CliError([state.t("cli.file_unwritable", path=output, detail=exc.strerror or exc)]) from None
    state.say("cli.audit.exported", count=total, path=output, err=True)
