"""The `labelloop` command line. Each command is a small function over the engine; failures are one line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Sequence

from app.cli_args import OneLineParser, at_least, class_key, cosine_threshold, search_text
from app.escaping import terminal_text
from app.startup import skip_pyarrow_pandas_probe
from engine.project.discovery import DEFAULT_K, DUPLICATE_THRESHOLD
from engine.errors import LabelloopError, as_refusal
from engine.learning.models import DEFAULT_SPEC


def tqdm(*args, **kwargs):
    """tqdm's progress bar, imported by the commands that draw one: its import (0.1 s) would slow every command."""
    from tqdm import tqdm as bar

    return bar(*args, **kwargs)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _changed_since_labelled(count: int) -> str:
    return (f"{count} images changed since labelled: relabel or confirm them (the page's status filter 'changed'); "
            "exports leave them out until then")


def _counting(bar):
    """An engine progress callback (done, total) that drives a tqdm bar."""
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def _read_only(project_root: str, command: str, *, progress=None, **options):
    """Run a command of engine.session.read_only_commands on the project here, or, while `labelloop serve` holds it,
    have that server run it (app.local_api): the same engine function, so the same answer. Progress is drawn for local
    work only."""
    from engine.project.folder import ProjectInUse, open_project
    from engine.session.read_only_commands import READ_ONLY_COMMANDS

    try:
        project = open_project(project_root)
    except ProjectInUse as held:
        if held.server is None:
            raise
        from app.local_api import ask_server

        return ask_server(held.server, command, options)
    with project:
        return READ_ONLY_COMMANDS[command](project, **options, **({"progress": progress} if progress else {}))


def _load_model(spec, *, fast_cpu: bool = False):
    from engine.learning.models import load_model

    print(terminal_text(f"loading model {spec.text}{' (fast CPU path: bfloat16)' if fast_cpu else ''} ..."),
          file=sys.stderr)
    return load_model(spec, fast_cpu=fast_cpu)


def cmd_init(args) -> int:
    from engine.project.folder import create_project

    if args.labels_from_folders:  # refused before anything is written
        from engine.labels.folder_labels import refuse_in_multi_label

        refuse_in_multi_label(args.multi_label)
    with create_project(args.project, images=args.images, classes=args.classes, model=args.model,
                        prompts=args.prompts, multi_label=args.multi_label) as project:
        names = ", ".join(c["name"] for c in project.store.classes())
        kind = "tags" if project.multi_label else "classes"
        print(terminal_text(f"created {project.root} for {project.images_root} with {kind}: {names}"))
        if args.labels_from_folders:
            from engine.labels.folder_labels import set_folder_labels

            set_folder_labels(project, True)
            print("labels from folders: ingest makes an image's nearest folder named like a class its label")
    print(terminal_text(f"next: labelloop ingest {args.project}"))
    return 0


def cmd_ingest(args) -> int:
    from engine.dataset.ingest import ingest
    from engine.project.folder import open_project

    if args.engine not in ("local", "ray"):
        raise LabelloopError(f"unknown --engine {args.engine!r}; use local (default) or ray")
    if args.engine == "ray":
        from engine.dataset.ray_ingest import ray_ingest as run_ingest, require_ray

        require_ray()  # before loading the model
        options = {"address": args.address, "workers": 1 if args.workers is None else args.workers,
                   "gpus_per_worker": args.gpus_per_worker}
    else:
        run_ingest, options = ingest, {"workers": args.workers}
    with open_project(args.project) as project:
        model = _load_model(project.model_spec, fast_cpu=args.fast_cpu)
        with tqdm(total=0, unit="img", desc="ingest", disable=args.json or None, file=sys.stderr) as bar:
            report = run_ingest(project, model, batch_size=args.batch_size, progress=_counting(bar),
                                verify=args.verify, **options)
        graph = _neighbour_graph(project, quiet=args.json)
        changed = len(project.store.changed_since_labelled())
    if args.json:
        _print_json({**report.as_dict(), "neighbour_graph": graph})
    else:
        print(f"{report.found} files: {report.new} new, {report.changed} changed, {report.removed} removed; "
              f"embedded {report.embedded}, reused {report.reused}, errors {report.errors}, "
              f"zero-shot {report.predicted} ({report.seconds:.1f}s)")
        if report.projects_skipped:
            print(f"skipped {report.projects_skipped} folders holding another labelloop project (never images of "
                  "this one)")
        if report.folder_labels:
            print(terminal_text(report.folder_labels["message"]))
        if changed:
            print(_changed_since_labelled(changed))
        if report.errors:
            print(terminal_text(f"see the reasons with: labelloop status {args.project}"))
        if graph["images"] and not graph["cached"]:
            print(f"neighbour graph of {graph['images']} images built for the next round ({graph['seconds']:.1f}s)")
    return 0


def _neighbour_graph(project, *, quiet: bool) -> dict:
    """Ingest's last step: the kNN graph the next round reads, built now as a recorded job with a bar."""
    from engine.jobs.runner import run_job
    from engine.session.round_runner import GRAPH_JOB, build_neighbour_graph

    with tqdm(total=100, desc="neighbour graph", file=sys.stderr, disable=quiet or None,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message, refresh=False)
            bar.update(round(100 * fraction) - bar.n)

        return run_job(project.store, GRAPH_JOB, {}, lambda context: build_neighbour_graph(project, context.progress),
                       on_progress=progress)


def cmd_label(args) -> int:
    from engine.labels.label_import import import_labels
    from engine.project.folder import open_project

    fmt, path = ("csv", args.csv) if args.csv else ("label-studio", args.label_studio)
    with open_project(args.project) as project:
        result = import_labels(project, path, fmt=fmt, actor=f"{fmt}:{path}", ls_root_url=args.ls_root_url,
                               force=args.force, person=args.as_person)
    if args.as_person:
        print(terminal_text(f"imported {result.rows} labels from {path} as {args.as_person} ({result.changed} new or "
                            "changed); each image's label is now the consensus of the people who labelled it"))
        return 0
    notes = [f"{result.changed} changed" + (f", {result.replaced} of them replacing a label someone else set"
                                            if result.replaced else "")]
    if result.kept:
        notes.append(f"{result.kept} kept: changed in labelloop after the Label Studio annotation "
                     "(--force replaces them)")
    if result.skipped:
        notes.append(f"{result.skipped} tasks without an annotation skipped")
    if result.cancelled:
        notes.append(f"{result.cancelled} cancelled tasks skipped")
    print(terminal_text(f"imported {result.rows} labels from {path} ({'; '.join(notes)})"))
    return 0


def cmd_team(args) -> int:
    from engine.labels.team import change_team, parse_person, team_report
    from engine.project.folder import open_project

    with open_project(args.project) as project:
        change_team(project, add=[parse_person(entry) for entry in args.add or []], remove=args.remove or [],
                    overlap=args.overlap, seed=args.seed)
        report = team_report(project)
    if args.json:
        _print_json(report)
        return 0
    for person in report["people"]:
        accuracy = person["estimated_accuracy"]
        print(terminal_text(f"{person['name']:<16} {person['role']:<8} {person['labels']:>6} labels; reviewed "
                            f"{person['reviewed']} (approved {person['approved']}, corrected {person['corrected']})"
                            + ("" if accuracy is None else f"; estimated accuracy {accuracy:.0%}")))
    if not report["people"]:
        print("no people yet: one local person labels and reviews (add people with --add NAME[:reviewer])")
    overlap = report["overlap"]
    print("overlap   none drawn (--overlap SHARE draws one)" if overlap is None else
          f"overlap   {overlap['images']} images ({overlap['share']:.0%}, seed {overlap['seed']}) for two people or more")
    return 0


def cmd_agreement(args) -> int:
    report = _read_only(args.project, "agreement")
    if args.json:
        _print_json(report)
        return 0
    def shown(kappa):
        return "n/a" if kappa is None else f"{kappa:.3f}"

    print(f"Fleiss' kappa  {shown(report['kappa'])} over the images two people or more labelled")
    for name, kappa in report["per_class"].items():
        print(terminal_text(f"  {name:<20} {shown(kappa)}"))
    for pair in report["pairs"]:
        print(terminal_text(f"Cohen's kappa  {pair['a']} / {pair['b']}: {shown(pair['kappa'])} on {pair['n']} images"))
    for person in report["people"]:
        agreement = person["agreement_with_consensus"]
        print(terminal_text(f"{person['name']:<16} {person['labels']:>6} labels; agrees with the consensus on "
                            + ("no shared image" if agreement is None else f"{agreement:.0%} of shared images")))
    return 0


def cmd_status(args) -> int:
    status = _read_only(args.project, "status")
    if args.json:
        _print_json(status)
        return 0
    images, labels = status["images"], status["labels"]
    print(f"project   {terminal_text(status['project'])}\nimages    {terminal_text(status['images_root'])}\n"
          f"model     {terminal_text(status['model']['spec'])}")
    print(f"classes   {terminal_text(', '.join(status['classes']))}")
    print(f"images    {images['ok']} ok, {images['error']} errors, {images['missing']} missing, "
          f"{status['duplicates']} duplicates; {status['model']['embedded']} embedded")
    print(f"labels    {labels['human']} human ({labels['none_of_these']} none-of-these), {labels['pseudo']} pseudo")
    if status["changed_since_labelled"]:
        print(f"changed   {_changed_since_labelled(status['changed_since_labelled'])}")
    last = status["last_round"]
    print(f"rounds    {'none yet' if last is None else 'last finished: ' + str(last['id'])}"
          + (f"; shown: {status['shown_round'] or 'zero-shot'}" if last else "")
          + (f"; held as measured worse: {', '.join(map(str, status['held_rounds']))} (labelloop round "
             f"{terminal_text(status['project'])} --show N shows one)" if status["held_rounds"] else ""))
    print(f"quality   {terminal_text(status['quality']['message'])}")
    for error in status["errors"][:20]:
        print(f"  error   {terminal_text(error['path'])}: {terminal_text(error['reason'])}")
    if len(status["errors"]) > 20:
        print(f"  ... and {len(status['errors']) - 20} more (labelloop status --json lists all)")
    return 0


def cmd_classes(args) -> int:
    from engine.labels.class_keys import set_class_keys
    from engine.project.folder import open_project

    with open_project(args.project) as project:
        if args.key:
            set_class_keys(project.store, args.key)
        classes = project.store.classes()
    if args.json:
        _print_json([{"name": c["name"], "key": c["key"], "prompts": c["prompts"]} for c in classes])
        return 0
    for entry in classes:
        prompts = " | ".join(entry["prompts"] or ["(default prompts)"])
        print(f"{entry['key'] or '-':>3}  {terminal_text(entry['name'])}  {terminal_text(prompts)}")
    return 0


def cmd_export(args) -> int:
    from engine.dataset.export import FOLDER_FORMATS, changed_note
    from engine.labels.label_studio import labeling_config

    # An absolute target: a server that answers for the project writes where this command was asked to.
    options = {"fmt": args.format, "out": str(Path(args.out).expanduser().absolute()), "source": args.source,
               "min_confidence": args.min_confidence, "include_none": args.include_none, "link": args.link,
               "split": args.split, "seed": args.seed, "ls_root_url": args.ls_root_url, "force": args.force,
               "drop_duplicates": args.drop_duplicates, "per_person": args.per_person}
    with tqdm(total=0, unit="img", desc="export", file=sys.stderr,
              disable=None if args.format in FOLDER_FORMATS else True) as bar:
        report = _read_only(args.project, "export", progress=_counting(bar), **options)
    notes = []
    if report["skipped_below_confidence"]:
        notes.append(f"{report['skipped_below_confidence']} below --min-confidence")
    if report["skipped_none"]:
        notes.append(f"{report['skipped_none']} none-of-these (--include-none keeps them)")
    if report["skipped_unavailable"]:
        notes.append(f"{report['skipped_unavailable']} human-labelled images missing or unreadable "
                     f"(see labelloop status)")
    if report["skipped_unpredicted"]:
        notes.append(f"{report['skipped_unpredicted']} not predicted yet (run ingest)")
    if report["skipped_duplicates"]:
        notes.append(f"{report['skipped_duplicates']} near-duplicates (one image per group kept)")
    rows, human = report["rows"], report["human"]
    what = (f"{rows} tasks ({human} annotations, {rows - human} predictions)"
            if report["format"] == "label-studio" else f"{rows} rows")
    print(f"wrote {what} to {terminal_text(report['path'])}" + (f" (left out: {', '.join(notes)})" if notes else ""))
    if report["skipped_changed"]:
        print(changed_note(report["skipped_changed"]))
    if report["splits"]:
        print("splits: " + ", ".join(f"{name} {count}" for name, count in report["splits"].items()))
    if report["format"] == "label-studio":
        print(f"Label Studio labeling config: {terminal_text(labeling_config(report['classes'], multi_label=report['multi_label']))}")
    return 0


def cmd_audit(args) -> int:
    from engine.project.audit import draw_audit, quality_report
    from engine.project.folder import open_project

    with open_project(args.project) as project:
        drawn = draw_audit(project.store, args.k)
        quality = quality_report(project.store, project_hint=str(project.root))
    if args.json:
        _print_json(drawn)
        return 0
    for item in drawn:
        print(terminal_text(item["path"]))
    print(terminal_text(f"drew {len(drawn)} random images into the audit ({quality['drawn']} drawn, "
                        f"{quality['audited']} audited): label them blind, on the page's Audit mode or with "
                        f"`labelloop label {args.project} --csv FILE`"), file=sys.stderr)
    return 0


def _judgement(quality: dict) -> str:
    """One line on what the audit says of a round against the one shown before it."""
    if not quality.get("measured"):
        return quality.get("message", "effect unmeasured")
    line = (f"estimated {quality['accuracy']:.1%} right ({quality['low']:.1%}-{quality['high']:.1%}) against "
            f"{quality['previous_accuracy']:.1%} ({quality['previous_low']:.1%}-{quality['previous_high']:.1%}) for "
            f"{'zero-shot' if not quality['previous'] else 'round ' + str(quality['previous'])}, "
            f"{quality['audited']} audited")
    if quality["held"]:
        line += "; WORSE beyond its interval: held back, the page and exports keep the round before (--show N " \
                "shows it anyway)"
    elif quality["worse"]:
        line += "; worse beyond its interval (a finetune round is shown all the same: the project now uses its model)"
    return line


def cmd_round(args) -> int:
    from dataclasses import asdict

    from engine.project.audit import show_round
    from engine.jobs.runner import run_job
    from engine.project.folder import open_project
    from engine.learning.selftrain.config import FinetuneConfig, RoundConfig
    from engine.session.round_runner import run_round

    if args.show is not None:
        with open_project(args.project) as project:
            show_round(project.store, args.show)
            shown = project.store.shown_round()
        print(f"round {args.show} is no longer held; the page and exports show round {shown}")
        return 0
    finetune = {name: value for name, value in (("steps", args.steps), ("batch_size", args.batch_size))
                if value is not None}
    config = RoundConfig(mode=args.mode, teacher=args.teacher, finetune=FinetuneConfig(**finetune))
    if args.rounds < 1:
        raise LabelloopError(f"--rounds must be at least 1, got {args.rounds}")
    results = []
    with open_project(args.project) as project:
        for number in range(1, args.rounds + 1):
            with tqdm(total=100, desc=f"round {number}/{args.rounds}", file=sys.stderr, disable=args.json or None,
                      bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}") as bar:
                def progress(fraction: float, message: str) -> None:
                    bar.set_postfix_str(message, refresh=False)
                    bar.update(round(100 * fraction) - bar.n)

                metrics = run_job(project.store, "round", asdict(config),
                                  lambda context: run_round(project, config, progress=context.progress),
                                  on_progress=progress)
            results.append(metrics.as_json())
            if not args.json:
                human = metrics.human_accuracy_crossfit
                print(f"round {metrics.round_id}: {metrics.pseudo_labels} pseudo-labels "
                      f"({metrics.coverage:.0%} of unlabeled), {metrics.flip_share:.1%} of predictions changed, "
                      f"accuracy on human labels (cross-fitted) {'n/a' if human is None else f'{human:.1%}'}, "
                      f"{metrics.seconds:.1f}s")
                print(f"  {_judgement(metrics.quality)}")
                if metrics.teacher_refused:
                    print(f"  note: {metrics.teacher_refused}")
                if metrics.finetune:
                    print(f"  adapted model saved to {terminal_text(project.model_spec.path)}; the project now uses it")
    if args.json:
        _print_json(results)
    return 0


def cmd_queue(args) -> int:
    from engine.project.audit import NEXT_AUDIT
    from engine.learning.review_ranking import AUDIT_HALF_WIDTH

    picked = _read_only(args.project, "queue", k=args.k)
    queue = picked["queue"]
    if picked["audit_needed"]:
        print(terminal_text(f"the class shares are not yet known to ±{100 * AUDIT_HALF_WIDTH:.0f} points: label "
                            f"random images first (`labelloop audit {args.project} --k {NEXT_AUDIT}`); the estimates "
                            "and the rounds' pseudo-labels wait for them"), file=sys.stderr)
    if args.json:
        _print_json(queue)
        return 0
    for rank, item in enumerate(queue, start=1):
        if "tag" in item:  # a multi-label project's: a tag of the person's it doubts, or its least sure tag
            print(terminal_text(f"{rank:4d}. {item['path']}  {';'.join(item['predicted']) or '(no tag)'}  "
                                f"{item['reason']}: {item['tag']} {item['probability']:.0%}"))
            continue
        if item["predicted"] is None:
            print(terminal_text(f"{rank:4d}. {item['path']}  {item['reason']}: label it blind, its prediction is "
                                "hidden"))
            continue
        label = f" [labeled {item['label']} by {item['label_source']}]" if "label" in item else ""
        if "without_label" in item:
            label += (f" [without that label: {item['without_label']['predicted']} "
                      f"{item['without_label']['confidence']:.0%}]")
        print(terminal_text(f"{rank:4d}. {item['path']}  {item['predicted']} {item['confidence']:.0%} "
                            f"(runner-up {item['runner_up']}, zero-shot {item['zero_shot']})  {item['reason']}{label}"))
    return 0


def cmd_search(args) -> int:
    if (args.text is None) == (args.like is None):
        raise LabelloopError('give either a search text or --like PATH, e.g. labelloop search PROJECT "a red star"')
    if args.like is not None:
        matches = _read_only(args.project, "search-like", path=args.like, k=args.k)
    else:
        matches = _search_text(args.project, args.text, args.k)
    if args.json:
        _print_json([{"path": m["path"], "score": round(m["score"], 4), "image_id": m["image_id"]} for m in matches])
        return 0
    for rank, match in enumerate(matches, start=1):
        print(f"{rank:4d}. {match['score']:.4f}  {terminal_text(match['path'])}")
    return 0


def _search_text(project_root: str, text: str, k: int) -> list[dict]:
    from dataclasses import asdict

    from engine.project.discovery import Discovery
    from engine.project.folder import open_project

    with open_project(project_root) as project:
        discovery = Discovery(project, lambda: _load_model(project.model_spec))
        return [asdict(match) for match in discovery.search_text(text, k)]


def cmd_duplicates(args) -> int:
    from engine.project.discovery import Discovery
    from engine.project.folder import open_project

    with open_project(args.project) as project:
        discovery = Discovery(project)
        _, image_ids, _ = discovery.vectors()  # nothing embedded yet: refused before the progress line
        print(f"grouping near-duplicates among {len(image_ids)} images (the neighbour graph is built once per "
              "model, then cached) ...", file=sys.stderr)
        groups = discovery.duplicates(args.threshold)
    if args.json:
        _print_json([group.as_json() for group in groups])
        return 0
    for number, group in enumerate(groups, start=1):
        print(f"group {number}: {len(group.matches)} images")
        for match, exact in zip(group.matches, group.exact):
            print(f"  {match.score:.4f}  {terminal_text(match.path)}{'  (exact copy)' if exact else ''}")
    images = sum(len(group.matches) for group in groups)
    print(f"{len(groups)} {'group' if len(groups) == 1 else 'groups'} of near-duplicates ({images} images) at "
          f"cosine >= {args.threshold}; "
          "export --drop-duplicates keeps one image per group")
    return 0


def cmd_demo(args) -> int:
    from engine.demo.setup import prepare_demo

    print(terminal_text(f"preparing the demo in {args.dir} (generated images, embedded model, offline) ..."),
          file=sys.stderr)
    with tqdm(total=0, unit="img", desc="ingest", file=sys.stderr) as bar:
        root, report = prepare_demo(args.dir, progress=_counting(bar))
    print(terminal_text(f"demo project {root}: {report.found} images, {report.embedded} embedded now, "
                        f"zero-shot {report.predicted} ({report.seconds:.1f}s)"))
    print(terminal_text(f"next: labelloop status {root}   |   labelloop export {root} --format csv --out demo.csv"))
    if not args.no_serve:
        from app.server import serve

        serve(root, host=args.host, port=args.port, auth=args.auth, allowed_hosts=args.allowed_host or [],
              trust_proxy=args.trust_proxy)
    return 0


def cmd_serve(args) -> int:
    from app.server import serve

    if args.project is not None and args.home is not None:
        raise LabelloopError("--home is for the start page, which serve shows without a PROJECT; give one or the "
                             "other")
    serve(args.project, home=args.home, host=args.host, port=args.port, auth=args.auth,
          allowed_hosts=args.allowed_host or [], trust_proxy=args.trust_proxy)
    return 0


def _add_server_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    command.add_argument("--port", type=at_least(1, 65535), default=7860)
    command.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                         help="require a login; repeat for each person (or set $LABELLOOP_AUTH, space-separated)")
    command.add_argument("--allowed-host", action="append", metavar="NAME",
                         help="a Host name the page is reached by besides this machine's and --host (a reverse "
                              "proxy's, a DNS name); repeat for each; requests naming another are refused")
    command.add_argument("--trust-proxy", action="store_true",
                         help="take the client's address from X-Forwarded-For sent by a reverse proxy on this "
                              "machine (the login throttle counts per client); off: the connection's own")


def _add_init_command(commands) -> None:
    init = commands.add_parser("init", help="create a project for a folder of images")
    init.add_argument("project")
    init.add_argument("--images", required=True, help="folder of images (read, never changed)")
    init.add_argument("--classes", required=True, help='comma-separated class names, e.g. "cat,dog,bird"')
    init.add_argument("--model", default=DEFAULT_SPEC,
                      help=f"demo, an open_clip NAME:TAG (default {DEFAULT_SPEC}), or a local model folder")
    init.add_argument("--prompts", help="file with one template per line, each with {} for the class name")
    init.add_argument("--labels-from-folders", action="store_true",
                      help="an image in a folder named like a class (the nearest such folder; case, _ and - "
                           "ignored) gets that class as its human label at ingest; a person's labels are kept")
    init.add_argument("--multi-label", action="store_true",
                      help="each image gets a set of tags (none, one or several of the classes), not one class; "
                           "fixed for the project")
    init.set_defaults(handler=cmd_init)


def _add_ingest_command(commands) -> None:
    ingest = commands.add_parser("ingest", help="scan, thumbnail, embed and zero-shot new or changed images")
    ingest.add_argument("project")
    ingest.add_argument("--batch-size", type=at_least(1), default=64)
    ingest.add_argument("--workers", type=at_least(0), default=None,
                        help="local: decode processes after the first batch (default: cores - 1 where decoding is "
                             "slower than the model and enough files are left, else none; 0 decodes in this process); "
                             "ray: model actors (default 1)")
    ingest.add_argument("--engine", default="local",
                        help='local (default) or ray: embed on a Ray cluster (pip install -e ".[ray]")')
    ingest.add_argument("--address", default=None,
                        help="ray: the cluster's address, e.g. HEAD:6379 (default $RAY_ADDRESS, else a local Ray)")
    ingest.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each model actor holds")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.add_argument("--verify", action="store_true",
                        help="hash every file again: finds a file replaced with the same size and modification time")
    ingest.add_argument("--fast-cpu", action="store_true",
                        help="on a CPU with bfloat16 (AVX512-BF16, AMX): the image encoder in bfloat16, about 2x "
                             "faster, embeddings at cosine >= 0.99 to float32")
    ingest.set_defaults(handler=cmd_ingest)


def _add_label_command(commands) -> None:
    label = commands.add_parser("label", help="import human labels (nothing is written if any row is bad)")
    label.add_argument("project")
    label_file = label.add_mutually_exclusive_group(required=True)
    label_file.add_argument("--csv", help='CSV with columns path,label (label "" = none of these; a multi-label '
                                          'project: tags joined by ";", "" = no tag applies)')
    label_file.add_argument("--label-studio", metavar="JSON",
                            help="a Label Studio JSON export: each task's newest annotation (empty = none of these)")
    label.add_argument("--ls-root-url",
                       help="prefix of data.image before the image's path, as given to export (default "
                            "/data/local-files/?d=IMAGES/, IMAGES the images folder's name); paths relative to the "
                            "images folder or absolute under it work too")
    label.add_argument("--as", dest="as_person", metavar="NAME",
                       help="the labels are this person's own (a person of the project: labelloop team --add), kept "
                            "beside the others'; each image's label becomes the consensus of everyone who labelled it")
    label.add_argument("--force", action="store_true",
                       help="label-studio: also replace labels changed in labelloop after the annotation was updated")
    label.set_defaults(handler=cmd_label)


def _add_team_command(commands) -> None:
    team = commands.add_parser("team", help="the people of a project, their roles and the overlap")
    team.add_argument("project")
    team.add_argument("--add", action="append", metavar="NAME[:reviewer]",
                      help="add a person (a labeler, or a reviewer with :reviewer), or change their role; repeat")
    team.add_argument("--remove", action="append", metavar="NAME", help="remove a person who has no labels; repeat")
    team.add_argument("--overlap", type=float, default=None, metavar="SHARE",
                      help="draw this share of the images (0 < SHARE <= 1) for two people or more to label blind")
    team.add_argument("--seed", type=int, default=0, help="seed of the overlap draw (default 0; recorded)")
    team.add_argument("--json", action="store_true")
    team.set_defaults(handler=cmd_team)


def _add_agreement_command(commands) -> None:
    agreement = commands.add_parser("agreement", help="how much people agree on the images several labelled")
    agreement.add_argument("project")
    agreement.add_argument("--json", action="store_true",
                           help='print {"kappa", "per_class", "pairs": [{"a", "b", "kappa", "n"}], "people": '
                                '[{"name", "labels", "agreement_with_consensus"}]}')
    agreement.set_defaults(handler=cmd_agreement)


def _add_status_command(commands) -> None:
    status = commands.add_parser("status", help="counts of images, labels and rounds")
    status.add_argument("project")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)


def _add_classes_command(commands) -> None:
    classes = commands.add_parser("classes", help="the classes with their keys and prompts; --key sets a key")
    classes.add_argument("project")
    classes.add_argument("--key", type=class_key, action="append", metavar="CLASS=KEY",
                         help="give CLASS its key on the page: one letter or digit, not a, n, s or u (the page's) "
                              "nor another class's (empty: no key); repeat for several, e.g. --key circle=c")
    classes.add_argument("--json", action="store_true", help='print [{"name", "key", "prompts"}, ...]')
    classes.set_defaults(handler=cmd_classes)


def _add_export_command(commands) -> None:
    export = commands.add_parser("export", help="write the labeled dataset")
    export.add_argument("project")
    export.add_argument("--format", required=True,
                        help="csv, parquet, jsonl (one file); imagefolder, hf (a folder of class sub-folders); "
                             "fiftyone (FiftyOne's image classification dataset); label-studio (JSON tasks); a "
                             "multi-label project: csv (tags ;-joined), parquet, jsonl (a list), hf "
                             "(Sequence(ClassLabel))")
    export.add_argument("--out", required=True, help="the file or folder to write (not inside the images folder)")
    export.add_argument("--min-confidence", type=float, default=None,
                        help="leave out machine labels below this confidence (human labels always pass)")
    export.add_argument("--source", default="all", help="all (default) or human")
    export.add_argument("--include-none", action=argparse.BooleanOptionalAction, default=None,
                        help='keep "none of these" labels (default: no for imagefolder and hf, where they need a folder '
                             'of their own, none_of_these; yes for the others)')
    export.add_argument("--link", default="copy", help="folders: copy (default), symlink or hardlink the images")
    export.add_argument("--split", help="folders: train,val[,test] fractions such as 0.8,0.1,0.1, stratified")
    export.add_argument("--seed", type=int, default=0, help="seed of --split (default 0)")
    export.add_argument("--ls-root-url",
                        help="label-studio: prefix of data.image before the image's path (default "
                             "/data/local-files/?d=IMAGES/, IMAGES the images folder's name)")
    export.add_argument("--force", action="store_true", help="replace an existing file or earlier export folder")
    export.add_argument("--per-person", action="store_true",
                        help="csv, jsonl or parquet of every person's own labels: one row per (image, person) with "
                             "path,person,label,labelled_at")
    export.add_argument("--drop-duplicates", nargs="?", type=cosine_threshold, const=DUPLICATE_THRESHOLD,
                        metavar="THRESHOLD",
                        help="keep one image per group of near-duplicates (see `labelloop duplicates`): a person's "
                             f"label first, then the most confident; THRESHOLD defaults to {DUPLICATE_THRESHOLD}")
    export.set_defaults(handler=cmd_export)


def _add_round_command(commands) -> None:
    rounds = commands.add_parser("round", help="run self-training rounds")
    rounds.add_argument("project")
    rounds.add_argument("--rounds", type=int, default=1)
    rounds.add_argument("--mode", default="head",
                        help="head (default: over cached embeddings) or finetune (adapts the image encoder; GPU)")
    rounds.add_argument("--steps", type=int, default=None, help="finetune: training steps per round")
    rounds.add_argument("--batch-size", type=int, default=None, help="finetune: images per step")
    rounds.add_argument("--teacher", default="head",
                        help="head (a trained linear head) or cache (training-free Tip-Adapter over the labels)")
    rounds.add_argument("--json", action="store_true", help="print each round's metrics as JSON")
    rounds.add_argument("--show", type=int, default=None, metavar="ROUND",
                        help="run nothing: show a round held back as measured worse (the page and exports then use it)")
    rounds.set_defaults(handler=cmd_round)


def _add_audit_command(commands) -> None:
    audit = commands.add_parser("audit", help="draw random images to label blind: the estimate of the dataset's "
                                              "accuracy and class shares")
    audit.add_argument("project")
    audit.add_argument("--k", type=at_least(1), default=30, help="how many more images to draw (default 30)")
    audit.add_argument("--json", action="store_true", help='print [{"path", "image_id"}, ...]')
    audit.set_defaults(handler=cmd_audit)


def _add_queue_command(commands) -> None:
    queue = commands.add_parser("queue", help="the images to review next, best first")
    queue.add_argument("project")
    queue.add_argument("--k", type=int, default=20)
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(handler=cmd_queue)


def _add_search_command(commands) -> None:
    search = commands.add_parser("search", help="images nearest a text (CLIP's text tower) or an image, best first")
    search.add_argument("project")
    search.add_argument("text", nargs="?", type=search_text, help='what the images show, e.g. "a red star"')
    search.add_argument("--like", metavar="PATH", help="an image of the project (relative to the images folder): its "
                                                       "nearest neighbours, itself first; needs no model")
    search.add_argument("--k", type=at_least(1), default=DEFAULT_K, help=f"how many (default {DEFAULT_K})")
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=cmd_search)


def _add_duplicates_command(commands) -> None:
    duplicates = commands.add_parser("duplicates", help="groups of near-identical images (exact copies marked)")
    duplicates.add_argument("project")
    duplicates.add_argument("--threshold", type=cosine_threshold, default=DUPLICATE_THRESHOLD,
                            help=f"cosine similarity at or above which images are near-duplicates (default "
                                 f"{DUPLICATE_THRESHOLD}, measured on the demo; photos under a full CLIP model: 0.97)")
    duplicates.add_argument("--json", action="store_true")
    duplicates.set_defaults(handler=cmd_duplicates)


def _add_demo_command(commands) -> None:
    demo = commands.add_parser("demo", help="generate a demo folder and project with the embedded model (offline)")
    demo.add_argument("--dir", default="labelloop-demo", help="where to put images/, ground_truth.csv, project/")
    demo.add_argument("--no-serve", action="store_true", help="prepare only; do not start the page")
    _add_server_options(demo)
    demo.set_defaults(handler=cmd_demo)


def _add_serve_command(commands) -> None:
    serve = commands.add_parser("serve", help="open the labeling page for a project (without one: a start page that "
                                              "opens or creates one)")
    serve.add_argument("project", nargs="?", help="the project (default: the start page, to open or create one)")
    serve.add_argument("--home", metavar="DIR",
                       help="without PROJECT: the folder whose projects the start page lists and from which the "
                            "paths typed there are read (default: the current folder)")
    _add_server_options(serve)
    serve.set_defaults(handler=cmd_serve)


# each command's sub-parser, in the order `labelloop --help` lists them
COMMANDS = (
    _add_init_command, _add_ingest_command, _add_label_command, _add_team_command, _add_agreement_command,
    _add_status_command, _add_classes_command,
    _add_export_command, _add_round_command, _add_audit_command, _add_queue_command, _add_search_command,
    _add_duplicates_command, _add_demo_command, _add_serve_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="labelloop", description="Turn a folder of images into a labeled dataset.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("serve", "demo"):  # these run the page, whose Gradio tables pass pandas to pyarrow
        skip_pyarrow_pandas_probe()
    logging.basicConfig(level=logging.ERROR)  # open_clip and huggingface log chatty INFO/WARNING lines
    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        return args.handler(args)
    except Exception as error:
        refusal = as_refusal(error, getattr(args, "project", None))
        if refusal is None:
            raise
        print(terminal_text(f"labelloop: error: {refusal}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labelloop: interrupted; everything finished before the interrupt is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
