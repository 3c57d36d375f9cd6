"""``churnwatch models list|promote|rollback``: the registry's models, and which one is current."""

from __future__ import annotations

import argparse
import sys

from apps.cli.args import common_flags
from apps.cli.errors import UserError
from apps.cli.inputs import settings_of


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("models", help="list, promote or roll back registry models")
    sp.add_argument("action", choices=["list", "promote", "rollback"],
                    help="list: the versions, * the current one; promote VERSION: make it current after a check; "
                         "rollback: back to the previously current version")
    sp.add_argument("version", nargs="?", help="the version to promote, e.g. v3 (no default: promote needs one)")
    common_flags(sp, broker=False)
    sp.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from pipeline.model.registry import Registry, RegistryError
    from pipeline.model.scoring import load_version

    settings = settings_of(args)
    reg = Registry(settings.models_dir)
    if args.action == "list":
        try:
            current = reg.current()
        except RegistryError as exc:  # the versions can still be listed
            print(f"warning: {exc}", file=sys.stderr)
            current = None
        versions = reg.versions()
        if not versions:
            print(f"no models in {reg.root}")
        for v in versions:
            try:
                meta = reg.meta(v)
            except Exception as exc:  # a broken entry is listed, not fatal
                print(f"  {v:6} (unreadable: {exc})")
                continue
            test = (meta.get("metrics") or {}).get("test", {})
            mark = "*" if v == current else " "
            gate = meta.get("gate")
            verdict = "" if not isinstance(gate, dict) else (
                "  gate passed" if gate.get("passed") else f"  gate refused: {'; '.join(gate.get('reasons') or [])}")
            ci = ((meta.get("comparison") or {}).get("model") or {}).get("ci") or {}
            auc_ci = ci.get("roc_auc")
            span = f" ({auc_ci[0]:.3f}-{auc_ci[1]:.3f})" if isinstance(auc_ci, list) and len(auc_ci) == 2 else ""
            print(f"{mark} {v:6} created {meta.get('created', '?')[:19]}  roc_auc {test.get('roc_auc', float('nan')):.3f}{span}"
                  f"  lift@10% {test.get('lift_at_10', float('nan')):.2f}  horizon {meta.get('horizon_days', '?')}d{verdict}")
        return 0
    if args.action == "promote":
        if not args.version:
            raise UserError("models promote needs a VERSION (see 'churnwatch models list')")
        reg.promote(args.version, validate=lambda p: load_version(reg, args.version,
                                                                    timeout_s=settings.model_check_timeout_s,
                                                                    feature_cfg=settings.feature_config()))
        print(f"promoted {args.version}")
        return 0
    previous = reg.rollback()
    print(f"rolled back to {previous}")
    return 0
