#!/usr/bin/env python3
"""Prices a folder with `qie cost` on each priced endpoint of each model
release alone, then routed (--route cheapest) among them, and checks that
the routed total is the sum of each image's cheapest price.

    scripts/route-check.py QIE FOLDER [FIGURES] [-- QIE COST OPTIONS...]

Prints one block per release (each endpoint alone, the routed total, the
saving against the cheapest single endpoint); with FIGURES (the benchmark
table's file), appends a row per release: routed total against the
per-image minimum, target <= 1.00x. Exits 1 when a routed total differs."""
import json, subprocess, sys
from decimal import Decimal

arguments = sys.argv[1:]
extra = arguments[arguments.index("--") + 1:] if "--" in arguments else []
arguments = arguments[:arguments.index("--")] if "--" in arguments else arguments
qie, folder = arguments[0], arguments[1]
figures = arguments[2] if len(arguments) > 2 and arguments[2] else None
label = (" " + " ".join(extra)) if extra else ""


def cost(providers):
    out = subprocess.run([qie, "cost", folder, "--provider", ",".join(providers), "--json", *extra],
                         capture_output=True, text=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [line for line in lines if not line.get("total")], lines[-1]


summaries = json.loads(subprocess.run([qie, "providers", "--json"], capture_output=True, text=True, check=True).stdout)
releases = {}
for summary in summaries:
    if summary["pricePublished"]:
        releases.setdefault(summary["version"], []).append(summary["id"])
failed = False
for release, endpoints in releases.items():
    if len(endpoints) < 2:
        continue
    alone = {}
    for endpoint in endpoints:
        files, total = cost([endpoint])
        alone[endpoint] = ({f["path"]: Decimal(f["costUSD"]) for f in files if f.get("costUSD")}, total)
    files, total = cost(endpoints)
    routed = Decimal(total["costUSD"])
    # Each image's cheapest price, from the single-endpoint runs.
    paths = {f["path"] for f in files if f["status"] == "planned"}
    minimum = sum(min(prices[p] for prices, _ in alone.values() if p in prices) for p in paths)
    # The cheapest single endpoint that takes every image.
    whole = [Decimal(t["costUSD"]) for prices, t in alone.values() if t.get("costUSD") and len(prices) == len(paths)]
    best = min(whole) if whole else routed
    print(f"{release}{label}: {len(paths)} images")
    for endpoint, (prices, t) in alone.items():
        if not prices:
            print(f"  {endpoint:34} alone  takes none of them")
            continue
        took = "" if len(prices) == len(paths) else f" (takes {len(prices)} of {len(paths)})"
        print(f"  {endpoint:34} alone  ${t.get('costUSD')}{took}")
    saving = format((best - routed).normalize(), "f")
    print(f"  routed (cheapest)                         ${routed}  per-image minimum ${minimum}  saves ${saving} on the cheapest single endpoint")
    if routed != minimum:
        failed = True
        print(f"  ROUTED TOTAL DIFFERS FROM THE PER-IMAGE MINIMUM", file=sys.stderr)
    if figures:
        with open(figures, "a") as out:
            out.write(f"route cheapest, {release}{label}: routed / per-image minimum (USD)\t{routed}\t{minimum}\t<= 1.00x\n")
sys.exit(1 if failed else 0)
