#!/usr/bin/env python3
"""`make workflows`: write each workflows/api/NAME.json as the UI-format
workflows/NAME.json, laid out with the live node definitions of a real ComfyUI."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer  # noqa: E402
from workflow_format import api_to_ui  # noqa: E402


def main() -> None:
    api_dir = os.path.join(ROOT, "workflows", "api")
    with ComfyServer() as server:
        object_info = server.get_json("/object_info")
    for name in sorted(os.listdir(api_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(api_dir, name), encoding="utf-8") as f:
            api = json.load(f)
        ui = api_to_ui(api, object_info)
        out = os.path.join(ROOT, "workflows", name)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(ui, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
