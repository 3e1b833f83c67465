"""Independent reference for scenes::routing, run by scenes/tests/routing.rs with Debian's
python3-networkx (/usr/bin/python3 routing_nx.py FIXTURE.geojson < query.json).

It does not use the Rust graph: it reads the GeoJSON roads itself, makes every vertex a node
(exact coordinates) and every segment an edge (both ways unless oneway=yes), with the documented
speeds (class design speed from CJJ 37 or maxspeed, times 0.67), projects each query point onto
its nearest drivable segment (within 1,000 m), splits the segments there, and runs networkx's
Dijkstra on the reversed graph from the target.

query.json: {"target": [lon, lat], "units": [[id, lon, lat], ...]}
stdout: {"units": {id: [eta_s, length_m] or null}, "route": {"from": .., "to": .., "time": .., "length": ..}}
"""
import json
import math
import sys

import networkx as nx

R = 6371008.8
SPEED = {"motorway": 80, "trunk": 60, "primary": 50, "secondary": 40, "tertiary": 30, "residential": 20,
         "unclassified": 20, "living_street": 20, "road": 20, "service": 15, "track": 15}
FACTOR = 0.67


def hav(a, b):
    la1, la2 = math.radians(a[1]), math.radians(b[1])
    dla, dlo = la2 - la1, math.radians(b[0] - a[0])
    h = math.sin(dla / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlo / 2) ** 2
    return 2 * R * math.asin(math.sqrt(h))


def main():
    fixture = json.load(open(sys.argv[1]))
    q = json.load(sys.stdin)
    points = {"target": tuple(q["target"])}
    for uid, lon, lat in q["units"]:
        points["u%s" % uid] = (lon, lat)
    if "route" in q:
        points["rfrom"] = tuple(q["route"][0])
        points["rto"] = tuple(q["route"][1])

    segs = []  # (a, b, mps, oneway)
    for f in fixture["features"]:
        p = f["properties"]
        hw = p.get("highway")
        if hw not in SPEED:
            continue  # footway, path, rail: not for vehicles
        kmh = float(p["maxspeed"]) if p.get("maxspeed") else SPEED[hw]
        mps = kmh / 3.6 * FACTOR
        cs = [tuple(c) for c in f["geometry"]["coordinates"]]
        for a, b in zip(cs, cs[1:]):
            segs.append((a, b, mps, p.get("oneway") == "yes"))

    # which segment each point lies on (projection in a local frame), as (t along the segment)
    lat0 = 41.8
    kx = math.cos(math.radians(lat0))
    on = {}
    for name, pt in points.items():
        best = None
        for i, (a, b, _, _) in enumerate(segs):
            ax, ay, bx, by, px, py = a[0] * kx, a[1], b[0] * kx, b[1], pt[0] * kx, pt[1]
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
            d = math.hypot(ax + t * dx - px, ay + t * dy - py)
            if best is None or d < best[0]:
                best = (d, i, t)
        # snap to the nearest drivable segment; farther than 1,000 m: not on the network
        if best[0] * 111195.08 <= 1000.0:
            on.setdefault(best[1], []).append((best[2], name))

    g = nx.DiGraph()

    def add(u, v, length, mps):
        # parallel edges keep the faster one (none in the fixture)
        t = length / mps
        if not g.has_edge(u, v) or g[u][v]["time"] > t:
            g.add_edge(u, v, time=t, length=length)

    for i, (a, b, mps, oneway) in enumerate(segs):
        stops = [(0.0, a, a)]
        for t, name in sorted(on.get(i, [])):
            node = a if t == 0.0 else b if t == 1.0 else name
            stops.append((t, node, (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))))
            if node != name:
                g.add_edge(name, node, time=0.0, length=0.0)
                g.add_edge(node, name, time=0.0, length=0.0)
        stops.append((1.0, b, b))
        for (t0, u, pu), (t1, v, pv) in zip(stops, stops[1:]):
            if u == v:
                continue
            length = hav(pu, pv)
            add(u, v, length, mps)
            if not oneway:
                add(v, u, length, mps)

    rev = g.reverse(copy=True)
    times, paths = nx.single_source_dijkstra(rev, "target", weight="time")
    out = {"units": {}}
    for uid, _, _ in q["units"]:
        n = "u%s" % uid
        if n in times:
            path = paths[n]
            length = sum(rev[x][y]["length"] for x, y in zip(path, path[1:]))
            out["units"][str(uid)] = [times[n], length]
        else:
            out["units"][str(uid)] = None
    if "route" in q:
        t, path = nx.single_source_dijkstra(g, "rfrom", "rto", weight="time")
        out["route"] = {"time": t, "length": sum(g[x][y]["length"] for x, y in zip(path, path[1:]))}
    json.dump(out, sys.stdout)


main()
