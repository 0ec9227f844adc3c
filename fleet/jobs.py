"""Jobs from a workflow and a file of briefs: one job per brief row × variant.

A job is one prompt: the API-format workflow with the row's values in its
BrandBrief node and the variant's seed in its ScriptLLM node(s). Its id is
the sha256 of that prompt (canonical JSON), so the same row, variant and
workflow always make the same job, in any batch, on any machine. The outputs
are then pointed at places named after the id (``prepare_prompt``): every
AssetUpload stores under ``fleet/<job id>/`` and every FFmpegAssemble saves as
``AdReel/fleet_<job id>``, so a redelivered job writes the same keys again.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from .config import FleetError

MAX_BRIEF_FILE_BYTES = 16 * 1024 * 1024
MAX_WORKFLOW_BYTES = 16 * 1024 * 1024
KEY_ROOT = "fleet"
#: what a job id may look like (``job_id_for`` makes 20 hex digits); a worker refuses any other id unread
JOB_ID_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class JobSpec:
    id: str
    row: int                  # 1-based row of the briefs file (CSV: the data row; JSONL: the line)
    variant: int              # 0-based variant index
    seed: int | None          # the ScriptLLM seed of this variant (None: the workflow has no ScriptLLM)
    brief: dict[str, Any]     # the row's values, as given to BrandBrief
    prompt: dict              # the prompt a worker queues (outputs already pointed at the job's keys)
    brand: str = ""
    workflow: str = ""

    def public(self) -> dict:
        return {"id": self.id, "row": self.row, "variant": self.variant, "seed": self.seed, "brand": self.brand}


def _read_text(path: str, limit: int, what: str) -> str:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise FleetError(f"{what} {path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if size > limit:
        raise FleetError(f"{what} {path}: {size} bytes is more than the {limit} this command reads")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError:
        raise FleetError(f"{what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise FleetError(f"{what} {path}: cannot read it ({exc.strerror or type(exc).__name__})") from None


def load_workflow(path: str) -> dict:
    """An API-format workflow (``{"1": {"class_type": …, "inputs": {…}}, …}``) with one BrandBrief node."""
    text = _read_text(path, MAX_WORKFLOW_BYTES, "workflow")
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not JSON")))
    except ValueError as exc:
        raise FleetError(f"workflow {path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        raise FleetError(f"workflow {path}: this is a UI-format workflow (what the editor saves); "
                         "give the API format, e.g. example_workflows/api/brief_to_ad_upload.json")
    if not isinstance(data, dict) or not data:
        raise FleetError(f"workflow {path}: expected an API-format workflow, a JSON object of nodes")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs"), dict):
            raise FleetError(f"workflow {path}: node {node_id!r} has no class_type / inputs: not an API-format workflow")
    briefs = nodes_of(data, "BrandBrief")
    if len(briefs) != 1:
        raise FleetError(f"workflow {path}: needs exactly one BrandBrief node for the brief rows, has {len(briefs)}")
    return data


def nodes_of(prompt: dict, class_type: str) -> list[tuple[str, dict]]:
    return [(k, v) for k, v in prompt.items() if isinstance(v, dict) and v.get("class_type") == class_type]


def brief_fields(workflow: dict) -> dict[str, Any]:
    """BrandBrief's inputs that a row may set (its widget values; links to other nodes excluded)."""
    (_, node), = nodes_of(workflow, "BrandBrief")
    return {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}


def read_briefs(path: str, workflow: dict) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) for each brief in a CSV (header = BrandBrief's input names) or JSON Lines file."""
    text = _read_text(path, MAX_BRIEF_FILE_BYTES, "briefs")
    return parse_briefs(text, workflow, jsonl=path.lower().endswith((".jsonl", ".ndjson", ".json")),
                        source=f"briefs {path}")


def parse_briefs(text: str, workflow: dict, jsonl: bool, source: str = "briefs",
                 name_columns: bool = True) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) for each brief in CSV text (header = BrandBrief's input names) or JSON Lines text:
    the one parser of a batch's rows (``submit --briefs`` and the job API's ``POST /api/v2/batches``).
    ``name_columns=False`` leaves an unknown column's name out of the error (the API never repeats what a
    visitor sent)."""
    allowed = brief_fields(workflow)
    rows: list[tuple[int, dict]] = []
    if jsonl:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_no_constant)
            except ValueError as exc:
                raise FleetError(f"{source} line {n}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise FleetError(f"{source} line {n}: each line must be a JSON object of BrandBrief inputs")
            rows.append((n, obj))
        where = "line"
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise FleetError(f"{source}: empty (the first line names BrandBrief's inputs)")
        for n, rec in enumerate(reader, start=1):
            if None in rec:
                raise FleetError(f"{source} row {n}: more cells than the header has columns")
            rows.append((n, {k.strip(): v for k, v in rec.items() if k is not None}))
        where = "row"
    if not rows:
        raise FleetError(f"{source}: no briefs in it")
    out = []
    for n, rec in rows:
        values = {}
        for key, value in rec.items():
            if key not in allowed:
                named = f" {key!r}" if name_columns else ""
                raise FleetError(f"{source} {where} {n}: unknown column{named}; BrandBrief's inputs are "
                                 + ", ".join(allowed))
            values[key] = _coerce(value, allowed[key])
        out.append((n, values))
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _coerce(value, default):
    """A CSV cell as the type of the workflow's value where it parses; else as given (ComfyUI then names the
    input in its error, and the job fails alone)."""
    if isinstance(default, bool) and isinstance(value, str):
        low = value.strip().lower()
        return True if low in ("true", "1", "yes") else False if low in ("false", "0", "no") else value
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return value
        if not math.isfinite(f):
            return value
        return int(f) if isinstance(default, int) and f.is_integer() else f
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # 8 in JSON and "8" in a CSV are the same brief, so the same job
    return value


def job_id_for(prompt: dict) -> str:
    blob = json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def batch_id_for(job_ids: list[str]) -> str:
    return "b" + hashlib.sha256("\n".join(job_ids).encode()).hexdigest()[:15]


def prepare_prompt(prompt: dict, job_id: str) -> dict:
    """The prompt with its outputs pointed at names derived from the job id."""
    out = copy.deepcopy(prompt)
    for _, node in nodes_of(out, "AssetUpload"):
        node["inputs"]["prefix_pattern"] = f"{KEY_ROOT}/{job_id}/"
    for _, node in nodes_of(out, "FFmpegAssemble"):
        node["inputs"]["filename_prefix"] = f"AdReel/fleet_{job_id}"
    return out


def key_prefix(job_id: str) -> str:
    return f"{KEY_ROOT}/{job_id}/"


def build_jobs(workflow: dict, briefs: list[tuple[int, dict]], variants: int, workflow_name: str = "") -> list[JobSpec]:
    if not isinstance(variants, int) or variants < 1:
        raise FleetError("--variants: must be a whole number ≥ 1")
    scripts = nodes_of(workflow, "ScriptLLM")
    if variants > 1 and not scripts:
        raise FleetError("--variants: the workflow has no ScriptLLM node whose seed could make variants")
    base_seed = None
    if scripts:
        s = scripts[0][1]["inputs"].get("seed", 0)
        base_seed = int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else 0
    jobs: list[JobSpec] = []
    seen: set[str] = set()
    (brief_id, _), = nodes_of(workflow, "BrandBrief")
    for row, values in briefs:
        for v in range(variants):
            prompt = copy.deepcopy(workflow)
            prompt[brief_id]["inputs"].update(values)
            seed = None
            if scripts:
                seed = base_seed + v
                for node_id, _ in scripts:
                    prompt[node_id]["inputs"]["seed"] = seed
            for node in prompt.values():
                node.pop("_meta", None)  # titles are not content
            try:
                jid = job_id_for(prompt)
            except ValueError:
                raise FleetError(f"briefs row {row}: a value is not a finite number") from None
            if jid in seen:
                raise FleetError(f"briefs row {row}, variant {v}: the same job as an earlier row (identical brief)")
            seen.add(jid)
            brand = str(prompt[brief_id]["inputs"].get("brand", ""))
            jobs.append(JobSpec(id=jid, row=row, variant=v, seed=seed, brief=values,
                                prompt=prepare_prompt(prompt, jid), brand=brand, workflow=workflow_name))
    return jobs
