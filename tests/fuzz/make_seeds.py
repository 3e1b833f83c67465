#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/seeds/<target>/ (small hand-made inputs, one per
format feature; regenerate with `python3 tests/fuzz/make_seeds.py`).

The viewer targets (viewer_tileset, viewer_glb) also take real files when present: the small
third-party 3D Tiles samples of ../shared/data/3dtiles (CITYTWIN_SHARED_DATA overrides; 3D BAG
tiles are CC BY 4.0, 3D BAG by TU Delft / 3DGI) and, with CITYTWIN_SEED_MODEL=<a built model dir>,
the tileset.json and the smallest GLB contents of a model this project built."""
import glob, gzip, json, os, struct, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# --- protobuf helpers -------------------------------------------------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def zz(n):
    return (n << 1) ^ (n >> 63)

def key(field, wire):
    return varint((field << 3) | wire)

def ld(field, payload):
    return key(field, 2) + varint(len(payload)) + payload

def vi(field, n):
    return key(field, 0) + varint(n)

def packed(field, nums):
    return ld(field, b"".join(varint(n) for n in nums))

# --- GeoJSON ----------------------------------------------------------------------------------
square = [[[123.40, 41.80], [123.41, 41.80], [123.41, 41.81], [123.40, 41.81], [123.40, 41.80]]]
put("geojson_precheck", "buildings.geojson", json.dumps({
    "type": "FeatureCollection",
    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    "features": [
        {"type": "Feature", "properties": {"height": 12.5, "use": "residential"},
         "geometry": {"type": "Polygon", "coordinates": square}},
        {"type": "Feature", "properties": {"name": "x"}, "geometry": {"type": "Point", "coordinates": [123.4, 41.8]}},
    ]}, indent=1))
put("geojson_precheck", "broken.geojson", '{"type":"FeatureCollection","features":[{"type":"Feature",\n"geometry":{"type":"Point","coordinates":[1,2}}]}')

# --- CityJSON ---------------------------------------------------------------------------------
verts = [[0, 0, 0], [1000, 0, 0], [1000, 1000, 0], [0, 1000, 0], [0, 0, 800], [1000, 0, 800], [1000, 1000, 800], [0, 1000, 800]]
solid = [[[[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]], [[1, 2, 6, 5]], [[2, 3, 7, 6]], [[3, 0, 4, 7]]]]
put("cityjson", "box.city.json", json.dumps({
    "type": "CityJSON", "version": "2.0",
    "transform": {"scale": [0.001, 0.001, 0.001], "translate": [123.4, 41.8, 0]},
    "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4326"},
    "CityObjects": {
        "b1": {"type": "Building", "attributes": {"measuredHeight": 8, "function": "residential"}, "children": ["b1p"],
               "geometry": [{"type": "Solid", "lod": "2", "boundaries": solid,
                             "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"}, {"type": "WallSurface"}],
                                           "values": [[0, 1, 2, 2, 2, 2]]}}]},
        "b1p": {"type": "BuildingPart", "parents": ["b1"],
                "geometry": [{"type": "MultiSurface", "lod": 1, "boundaries": [[[0, 1, 2, 3]]]}]},
        "t1": {"type": "SolitaryVegetationObject", "geometry": []}},
    "vertices": verts}))

# --- CityGML ----------------------------------------------------------------------------------
def poly(coords):
    pos = " ".join(f"{x} {y} {z}" for x, y, z in coords)
    return f'<gml:Polygon gml:id="p{zlib.crc32(pos.encode()) % 1000}"><gml:exterior><gml:LinearRing><gml:posList srsDimension="3">{pos}</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>'
g = [(123.40, 41.80, 0), (123.401, 41.80, 0), (123.401, 41.801, 0), (123.40, 41.801, 0), (123.40, 41.80, 0)]
r = [(x, y, 10) for x, y, _ in g]
put("citygml", "lod2.gml", f'''<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:gml="http://www.opengis.net/gml" xmlns:gen="http://www.opengis.net/citygml/generics/2.0">
<gml:boundedBy><gml:Envelope srsName="EPSG:4326" srsDimension="3"><gml:lowerCorner>123.4 41.8 0</gml:lowerCorner><gml:upperCorner>123.401 41.801 10</gml:upperCorner></gml:Envelope></gml:boundedBy>
<core:cityObjectMember><bldg:Building gml:id="b1"><gml:name>A &amp; B</gml:name><bldg:function>1000</bldg:function><bldg:measuredHeight uom="m">10</bldg:measuredHeight>
<gen:stringAttribute name="use"><gen:value>office</gen:value></gen:stringAttribute>
<bldg:boundedBy><bldg:GroundSurface><bldg:lod2MultiSurface><gml:MultiSurface><gml:surfaceMember>{poly(g)}</gml:surfaceMember></gml:MultiSurface></bldg:lod2MultiSurface></bldg:GroundSurface></bldg:boundedBy>
<bldg:boundedBy><bldg:RoofSurface><bldg:lod2MultiSurface><gml:MultiSurface><gml:surfaceMember>{poly(r)}</gml:surfaceMember><gml:surfaceMember xlink:href="#p1" xmlns:xlink="http://www.w3.org/1999/xlink"/></gml:MultiSurface></bldg:lod2MultiSurface></bldg:RoofSurface></bldg:boundedBy>
<bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="b1p"><bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface><gml:surfaceMember>{poly(g)}</gml:surfaceMember></gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod1Solid></bldg:BuildingPart></bldg:consistsOfBuildingPart>
</bldg:Building></core:cityObjectMember>
<core:cityObjectMember><bldg:Building gml:id="b2"><bldg:lod0FootPrint><gml:MultiSurface><gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:pos>123.40 41.80 0</gml:pos><gml:pos>123.401 41.80 0</gml:pos><gml:pos>123.401 41.801 0</gml:pos><gml:pos>123.40 41.80 0</gml:pos></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember></gml:MultiSurface></bldg:lod0FootPrint></bldg:Building></core:cityObjectMember>
</core:CityModel>
''')

# --- glTF / GLB -------------------------------------------------------------------------------
def glb(doc, bin_):
    while len(bin_) % 4:
        bin_ += b"\0"
    j = json.dumps(doc).encode()
    while len(j) % 4:
        j += b" "
    body = struct.pack("<I4s", len(j), b"JSON") + j + struct.pack("<I4s", len(bin_), b"BIN\0") + bin_
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body

pos = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
idx = struct.pack("<3H", 0, 1, 2) + b"\0\0"
doc = {
    "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
    "nodes": [{"children": [1], "translation": [1, 0, 0]}, {"mesh": 0, "name": "wall", "scale": [2, 2, 2]}],
    "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
    "buffers": [{"byteLength": len(pos) + len(idx)}],
    "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(pos)}, {"buffer": 0, "byteOffset": len(pos), "byteLength": 6}],
    "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]},
                  {"bufferView": 1, "componentType": 5123, "count": 3, "type": "SCALAR"}],
}
g1 = glb(doc, pos + idx)
put("placed_gltf", "triangle.glb", g1)
put("glb", "triangle.glb", g1)
import base64
doc2 = dict(doc)
doc2["buffers"] = [{"byteLength": len(pos) + len(idx), "uri": "data:application/octet-stream;base64," + base64.b64encode(pos + idx).decode()}]
put("placed_gltf", "triangle.gltf", json.dumps(doc2))

# --- IFC --------------------------------------------------------------------------------------
put("ifc", "wall.ifc", """ISO-10303-21;
HEADER;
FILE_DESCRIPTION(('ViewDefinition [CoordinationView]'),'2;1');
FILE_NAME('wall.ifc','2024-01-01T00:00:00',(''),(''),'','','');
FILE_SCHEMA(('IFC4'));
ENDSEC;
DATA;
#1=IFCCARTESIANPOINT((0.,0.,0.));
#2=IFCDIRECTION((0.,0.,1.));
#3=IFCDIRECTION((1.,0.,0.));
#4=IFCAXIS2PLACEMENT3D(#1,#2,#3);
#5=IFCLOCALPLACEMENT($,#4);
#6=IFCCARTESIANPOINT((0.,0.));
#7=IFCCARTESIANPOINT((5.,0.));
#8=IFCCARTESIANPOINT((5.,0.2));
#9=IFCCARTESIANPOINT((0.,0.2));
#10=IFCPOLYLINE((#6,#7,#8,#9,#6));
#11=IFCARBITRARYCLOSEDPROFILEDEF(.AREA.,'wall',#10);
#12=IFCAXIS2PLACEMENT3D(#1,$,$);
#13=IFCEXTRUDEDAREASOLID(#11,#12,#2,3.);
#14=IFCSHAPEREPRESENTATION($,'Body','SweptSolid',(#13));
#15=IFCPRODUCTDEFINITIONSHAPE($,$,(#14));
#16=IFCWALL('0aBcDeFgHiJkLmNoPqRsTu',$,'Wall \\X2\\00E4\\X0\\ 1',$,$,#5,#15,$,.STANDARD.);
#17=IFCCARTESIANPOINTLIST3D(((0.,0.,0.),(1.,0.,0.),(0.,1.,0.)));
#18=IFCTRIANGULATEDFACESET(#17,$,$,((1,2,3)),$);
#19=IFCSHAPEREPRESENTATION($,'Body','Tessellation',(#18));
#20=IFCPRODUCTDEFINITIONSHAPE($,$,(#19));
#21=IFCSLAB('1aBcDeFgHiJkLmNoPqRsTu',$,'Slab',$,$,#5,#20,$,.FLOOR.);
ENDSEC;
END-ISO-10303-21;
""")

# --- placement --------------------------------------------------------------------------------
put("placement", "anchor.json", json.dumps({"lon": 123.43, "lat": 41.8, "height": 42.5, "heading": 30, "scale": 0.001, "up": "y", "name": "Hall"}))

# --- OSM XML ----------------------------------------------------------------------------------
put("osm_xml", "small.osm", """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="hand">
 <bounds minlat="41.8" minlon="123.4" maxlat="41.81" maxlon="123.41"/>
 <node id="1" lat="41.800" lon="123.400"/>
 <node id="2" lat="41.800" lon="123.401"/>
 <node id="3" lat="41.801" lon="123.401"/>
 <node id="4" lat="41.801" lon="123.400"/>
 <node id="5" lat="41.805" lon="123.405"><tag k="amenity" v="hospital"/><tag k="name" v="H &amp; S"/></node>
 <node id="6" lat="41.806" lon="123.406" visible="false"/>
 <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/><tag k="building" v="yes"/><tag k="building:levels" v="5"/></way>
 <way id="11"><nd ref="1"/><nd ref="3"/><tag k="highway" v="primary"/><tag k="maxspeed" v="50 mph"/><tag k="oneway" v="-1"/></way>
 <way id="12"><nd ref="2"/><nd ref="3"/><nd ref="4"/></way>
 <way id="13"><nd ref="4"/><nd ref="1"/><nd ref="2"/></way>
 <relation id="20"><member type="way" ref="12" role="outer"/><member type="way" ref="13" role="outer"/><member type="node" ref="5" role=""/><tag k="type" v="multipolygon"/><tag k="natural" v="water"/></relation>
</osm>
""")

# --- OSM PBF ----------------------------------------------------------------------------------
def pbf_blob(kind, payload):
    blob = vi(2, len(payload)) + ld(3, zlib.compress(payload))  # raw_size, zlib_data
    header = ld(1, kind.encode()) + vi(3, len(blob))
    return struct.pack(">I", len(header)) + header + blob

osm_header = ld(4, b"OsmSchema-V0.6") + ld(4, b"DenseNodes") + ld(16, b"hand")
strings = [b"", b"building", b"yes", b"highway", b"residential", b"amenity", b"school", b"type", b"multipolygon", b"outer", b"natural", b"water"]
st = b"".join(ld(1, s) for s in strings)
ids = [1, 2, 3, 4, 5]
lats = [418000000, 418000000, 418010000, 418010000, 418050000]
lons = [1234000000, 1234010000, 1234010000, 1234000000, 1234050000]
def delta(v):
    out, prev = [], 0
    for x in v:
        out.append(zz(x - prev)); prev = x
    return out
# granularity 100 nanodeg: values are in units of 1e-7 deg
dense = packed(1, delta(ids)) + packed(8, delta(lats)) + packed(9, delta(lons)) + packed(10, [0, 0, 0, 0, 5, 6, 0])
group_nodes = ld(2, dense)
way1 = vi(1, 10) + packed(2, [1]) + packed(3, [2]) + packed(8, delta([1, 2, 3, 4, 1]))
way2 = vi(1, 11) + packed(2, [3]) + packed(3, [4]) + packed(8, delta([1, 3]))
group_ways = ld(3, way1) + ld(3, way2)
rel = vi(1, 20) + packed(2, [7, 10]) + packed(3, [8, 11]) + packed(8, [9]) + packed(9, delta([10])) + packed(10, [1])
group_rels = ld(4, rel)
block = ld(1, st) + ld(2, group_nodes) + ld(2, group_ways) + ld(2, group_rels) + vi(17, 100)
put("osm_pbf", "small.osm.pbf", pbf_blob("OSMHeader", osm_header) + pbf_blob("OSMData", block))

# --- MVT --------------------------------------------------------------------------------------
def cmd(id_, count):
    return (id_ & 7) | (count << 3)
poly_geom = [cmd(1, 1), zz(10), zz(10), cmd(2, 3), zz(20), zz(0), zz(0), zz(20), zz(-20), zz(0), cmd(7, 1)]
line_geom = [cmd(1, 1), zz(0), zz(0), cmd(2, 2), zz(100), zz(100), zz(50), zz(-20)]
pt_geom = [cmd(1, 2), zz(5), zz(5), zz(3), zz(3)]
f1 = vi(1, 7) + packed(2, [0, 0, 1, 1]) + vi(3, 3) + packed(4, poly_geom)
f2 = packed(2, [0, 2]) + vi(3, 2) + packed(4, line_geom)
f3 = vi(3, 1) + packed(4, pt_geom)
vals = ld(4, ld(1, b"residential")) + ld(4, key(3, 1) + struct.pack("<d", 12.5)) + ld(4, vi(5, 3)) + ld(4, vi(6, zz(-4))) + ld(4, vi(7, 1)) + ld(4, key(2, 5) + struct.pack("<f", 1.5))
layer = vi(15, 2) + ld(1, b"buildings") + ld(2, f1) + ld(2, f2) + ld(2, f3) + ld(3, b"use") + ld(3, b"height") + vals + vi(5, 4096)
put("mvt", "three_features.mvt", ld(3, layer))

# --- PMTiles v3 -------------------------------------------------------------------------------
def directory(entries):
    # entries: (tile_id, offset, length, run_length)
    out = varint(len(entries))
    last = 0
    for tid, *_ in entries:
        out += varint(tid - last); last = tid
    for *_, rl in entries:
        out += varint(rl)
    for _, _, ln, _ in entries:
        out += varint(ln)
    prev_end = None
    for _, off, ln, _ in entries:
        out += varint(0 if prev_end == off else off + 1)
        prev_end = off + ln
    return out

tile_a = ld(3, layer)
tile_b = b"\x1a\x00"
tiles_data = tile_a + tile_b
root = directory([(0, 0, len(tile_a), 1), (1, len(tile_a), len(tile_b), 2)])
meta = json.dumps({"name": "seed", "vector_layers": [{"id": "buildings"}]}).encode()
hdr_len = 127
root_off = hdr_len
meta_off = root_off + len(root)
leaf_off = meta_off + len(meta)
data_off = leaf_off
hdr = b"PMTiles" + bytes([3])
hdr += struct.pack("<QQQQQQQQ", root_off, len(root), meta_off, len(meta), leaf_off, 0, data_off, len(tiles_data))
hdr += struct.pack("<QQQ", 3, 2, 2)  # addressed, entries, contents
hdr += bytes([1, 1, 1, 1])  # clustered, internal compression none, tile compression none, tile type mvt
hdr += bytes([0, 1])  # min zoom, max zoom
hdr += struct.pack("<iiii", int(123.4e7), int(41.8e7), int(123.5e7), int(41.9e7))
hdr += bytes([0]) + struct.pack("<ii", int(123.45e7), int(41.85e7))
assert len(hdr) == 127, len(hdr)
put("pmtiles", "two_tiles.pmt", hdr + root + meta + tiles_data)

# --- tileset.json -----------------------------------------------------------------------------
put("tileset", "tileset.json", json.dumps({
    "asset": {"version": "1.1", "tilesetVersion": "seed"}, "geometricError": 500,
    "root": {"boundingVolume": {"region": [2.15, 0.73, 2.16, 0.74, 0, 120]}, "geometricError": 100, "refine": "ADD",
             "content": {"uri": "tiles/0.glb"},
             "children": [{"boundingVolume": {"box": [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]}, "geometricError": 0,
                           "content": {"uri": "tiles/1.glb"}}]},
    "extensionsUsed": ["3DTILES_content_gltf"]}))
# --- viewer: tileset.json (viewer-core Tree::load) ---------------------------------------------
# an ECEF box under a root transform, a region child, a sphere, an external tileset, 1.0 `url`
ecef = [-2_591_000.0, 3_915_000.0, 4_228_000.0]  # near Shenyang
put("viewer_tileset", "ecef_box.json", json.dumps({
    "asset": {"version": "1.0", "gltfUpAxis": "Z"}, "geometricError": 200,
    "root": {"transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0] + ecef + [1],
             "boundingVolume": {"box": [0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 30]}, "geometricError": 50, "refine": "REPLACE",
             "content": {"url": "tiles/0.b3dm"},
             "children": [
                 {"boundingVolume": {"region": [2.1542, 0.7296, 2.1546, 0.7299, 0, 80]}, "geometricError": 8, "content": {"uri": "a/b.glb.gz?v=1"}},
                 {"boundingVolume": {"sphere": [0, 0, 0, 40]}, "geometricError": 0, "refine": "ADD", "content": {"uri": "../ext/tileset.json"}},
                 {"boundingVolume": {"box": [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]}, "geometricError": 0, "contents": [{"uri": "/abs/c.glb"}]}]}}))
put("viewer_tileset", "region_root.json", json.dumps({
    "asset": {"version": "1.1"}, "geometricError": 500,
    "root": {"boundingVolume": {"region": [2.15, 0.73, 2.16, 0.74, 0, 120]}, "geometricError": 100, "content": {"uri": "tiles/0.glb"},
             "children": [{"boundingVolume": {"region": [2.15, 0.73, 2.155, 0.735, 0, 60]}, "geometricError": 0, "content": {"uri": "tiles/1.glb"}}]}}))

# --- viewer: tile content (viewer-core read_content) -------------------------------------------
def b3dm(glb_bytes, feature_table):
    ftj = json.dumps(feature_table).encode()
    while (28 + len(ftj)) % 8:
        ftj += b" "
    total = 28 + len(ftj) + len(glb_bytes)
    return b"b3dm" + struct.pack("<6I", 1, total, len(ftj), 0, 0, 0) + ftj + glb_bytes

put("viewer_glb", "triangle.glb", g1)
put("viewer_glb", "triangle.b3dm", b3dm(g1, {"BATCH_LENGTH": 0, "RTC_CENTER": [-2591000.0, 3915000.0, 4228000.0]}))
put("viewer_glb", "triangle.glb.gz", gzip.compress(g1, mtime=0))
# normals, texture coordinates, int16 quantised positions, a triangle strip, two instances
qpos = struct.pack("<12h", 0, 0, 0, 0, 32767, 0, 32767, 0, 0, 32767, 32767, 0)
nrm = struct.pack("<12f", *([0, 0, 1] * 4))
uv = struct.pack("<8f", 0, 0, 0, 1, 1, 0, 1, 1)
strip = struct.pack("<4B", 0, 1, 2, 3)
tr = struct.pack("<6f", 0, 0, 0, 5, 0, 0)
rot = struct.pack("<8f", 0, 0, 0, 1, 0, 0.7071, 0, 0.7071)
bin3 = qpos + nrm + uv + strip + tr + rot
offs = [0, len(qpos), len(qpos) + len(nrm), len(qpos) + len(nrm) + len(uv), len(qpos) + len(nrm) + len(uv) + 4, len(qpos) + len(nrm) + len(uv) + 4 + len(tr)]
lens = [len(qpos), len(nrm), len(uv), 4, len(tr), len(rot)]
doc3 = {
    "asset": {"version": "2.0"}, "extensionsUsed": ["KHR_mesh_quantization", "EXT_mesh_gpu_instancing"],
    "extensionsRequired": ["KHR_mesh_quantization"],
    "nodes": [{"mesh": 0, "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 10, 0, 0, 1],
               "extensions": {"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": 4, "ROTATION": 5}}}}],
    "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "mode": 5, "material": 0}]}],
    "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [0.5, 0.5, 0.5, 1]}, "doubleSided": True}],
    "buffers": [{"byteLength": len(bin3)}],
    "bufferViews": [{"buffer": 0, "byteOffset": o, "byteLength": l} for o, l in zip(offs, lens)],
    "accessors": [
        {"bufferView": 0, "componentType": 5122, "normalized": True, "count": 4, "type": "VEC3"},
        {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC3"},
        {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC2"},
        {"bufferView": 3, "componentType": 5121, "count": 4, "type": "SCALAR"},
        {"bufferView": 4, "componentType": 5126, "count": 2, "type": "VEC3"},
        {"bufferView": 5, "componentType": 5126, "count": 2, "type": "VEC4"}],
}
put("viewer_glb", "quantized_strip_instanced.glb", glb(doc3, bin3))

# --- live API payloads (api_payloads: first byte picks the parser) -----------------------------
def api(sel, name, body):
    put("api_payloads", name, bytes([sel]) + (body.encode() if isinstance(body, str) else body))
ev = {"category": "fire", "severity": 3, "source": "hotline_12345", "title": "烟雾 smoke", "description": "3F",
      "location": {"lon": 123.43, "lat": 41.8}, "actor": "dispatcher-1", "reported_at": "2026-11-22T08:00:00Z", "external_ref": "12345-1"}
api(0, "event.json", json.dumps(ev, ensure_ascii=False))
api(0, "events_batch.json", json.dumps([ev, dict(ev, category="gas_leak", source="sensor_alarm", severity=None)]))
api(1, "transition.json", json.dumps({"to": "cancelled", "actor": "d", "note": "dup", "reason": "duplicate of 7"}))
api(2, "assign.json", json.dumps({"unit_id": 3, "actor": "d", "note": "nearest"}))
api(3, "unit_status.json", json.dumps({"status": "on_scene", "actor": "crew", "position": {"lon": 123.41, "lat": 41.79}}))
api(4, "token.json", json.dumps({"name": "ops-1", "role": "operator", "expires_days": 30}))
api(5, "observations.json", json.dumps([{"datastream": 1, "result": 42.5, "phenomenonTime": "2026-11-22T08:00:00+08:00"},
                                        {"Datastream": {"@iot.id": 2}, "result": "open", "resultTime": "2026-11-22"}]))
api(6, "sta_observation.json", json.dumps({"Datastream": {"@iot.id": 1}, "result": 7, "phenomenonTime": "2026-11-22T00:00:00Z/2026-11-22T00:05:00Z"}))
api(7, "create_observations.json", json.dumps([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result", "resultTime"],
                                               "dataArray": [["2026-11-22T00:00:00Z", 1.5, None], ["2026-11-22T00:01:00Z", 2, "2026-11-22T00:01:01Z"]]}]))
api(8, "filter.txt", "result gt 5 or (result lt 1 and not phenomenonTime ge 2026-01-01T00:00:00Z) or result eq 'it''s'")
api(9, "time.txt", "2026-11-22T08:00:00.123+08:00")
api(9, "bbox.txt", "123.40,41.78,123.46,41.82")
# SensorThings entity creation (12): the second byte picks the entity set (twin_protocol::sta_entity::
# ENTITY_SETS: 0 Things … 4 Datastreams; bit 7: nested in a Thing)
sta_ds = {"name": "AQI 和平", "properties": {"sensorType": "aqi", "thresholds": {"warning": 100, "alarm": 200, "hysteresis": 5}},
          "Sensor": {"name": "probe", "encodingType": "application/pdf", "metadata": "http://example.org/aqi.pdf"},
          "ObservedProperty": {"@iot.id": 1}}
api(12, "sta_thing.json", bytes([0]) + json.dumps({"name": "station 1", "properties": {"district": "和平区"},
    "Locations": [{"name": "site", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [123.43, 41.8]}}],
    "Datastreams": [sta_ds]}, ensure_ascii=False).encode())
api(12, "sta_datastream.json", bytes([4]) + json.dumps(dict(sta_ds, Thing={"@iot.id": 3}, unitOfMeasurement={"name": "AQI", "symbol": "AQI", "definition": "x"}), ensure_ascii=False).encode())
api(11, "login.json", json.dumps({"user": "alice", "password": "correct horse battery staple", "expires_in_s": 3600}))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "assets", "indicators", "environment.toml"), encoding="utf-8") as f:
    env_toml = f.read()
first = env_toml.index("[[indicator]]")
second = env_toml.find("[[indicator]]", first + 1)
api(10, "indicator.toml", env_toml[first:second if second > 0 else None])
api(10, "indicator_derived.toml", """[[indicator]]
id = "t_spread"
name_zh = "极差"
name_en = "Spread"
theme = "生态"
unit = "{AQI}"
owner = "测试"
kind = "derived"
expr = "max(1, 2) - min(3, 4) * (5 / 2)"
spatial = "district"
grain = "PT1H"
version = 1
state = "published"
""")

# --- MQTT observation payloads (mqtt_payload: first byte is the datastream id, 255: own topic) ---
put("mqtt_payload", "one.json", bytes([7]) + json.dumps({"result": 35.2, "phenomenonTime": "2026-11-22T08:00:00Z"}).encode())
put("mqtt_payload", "array.json", bytes([9]) + json.dumps([{"result": 1, "resultTime": "2026-11-22T08:00:00Z"}, {"result": "closed", "phenomenonTime": None}]).encode())
put("mqtt_payload", "topic.txt", bytes([255]) + b"citytwin/datastreams/12/observations\n" + json.dumps({"result": 0}).encode())

# --- real files for the viewer targets --------------------------------------------------------
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shared = os.environ.get("CITYTWIN_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
def copy_real(target, src, name, limit=16 * 1024):
    if os.path.isfile(src) and os.path.getsize(src) <= limit:
        with open(src, "rb") as f:
            put(target, name, f.read())
        return True
    return False
# Third-party samples of ../shared/data/3dtiles (3D BAG tiles are CC BY 4.0) are never copied into
# the repository: scripts/fuzz.sh adds the small ones to the viewer targets' corpus at run time.
model = os.environ.get("CITYTWIN_SEED_MODEL")
if model:
    ts = sorted(glob.glob(os.path.join(model, "**", "tileset.json"), recursive=True), key=os.path.getsize)
    if ts:
        copy_real("viewer_tileset", ts[0], "model_tileset.json", 64 * 1024)
    contents = [p for p in glob.glob(os.path.join(model, "**", "*"), recursive=True) if p.endswith((".glb", ".b3dm", ".glb.gz"))]
    for p in sorted(contents, key=os.path.getsize)[:3]:
        copy_real("viewer_glb", p, "model_" + os.path.basename(p), 48 * 1024)
print("seeds written to", ROOT)
