//! The canonical city model: every ingest path (GDAL, CityJSON, CityGML, glTF, IFC, the built-in
//! Shenyang generator) produces these types, and every consumer (vector tiles, 3D Tiles, live
//! operations, the viewer's metadata) reads them.
//!
//! Coordinates are WGS-84 longitude/latitude in degrees (EPSG:4326, x = lon, y = lat); heights are
//! metres above the terrain. 3D geometry of CIM buildings is kept in a local east-north-up frame in
//! metres around a per-building anchor, so f32 stays millimetre-exact.
//!
//! The schema is documented for users in docs/MODEL.md; keep the two in step.

use geo_types::{LineString, MultiPolygon, Point};
use serde::{Deserialize, Serialize};

/// Bumped whenever the persisted layout of [`CityModel`] changes.
pub const MODEL_FORMAT_VERSION: u32 = 3;

/// Where a feature came from: an index into [`CityModel::sources`] plus the id it had there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    pub source: u16,
    /// The source's own identifier (OSM `w123`/`r45`, a GeoJSON id, a CityJSON object key, a
    /// `gml:id`, a generator id). Empty when the source has none.
    pub id: String,
}

/// Names in the cockpit's two languages plus the source's own name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Names {
    pub zh: Option<String>,
    pub en: Option<String>,
    /// The name as the source gives it (OSM `name`, `NOM`, …) when it is in another language.
    pub local: Option<String>,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.zh.is_none() && self.en.is_none() && self.local.is_none()
    }
    /// The best display name: zh, then local, then en.
    pub fn display(&self) -> Option<&str> {
        self.zh.as_deref().or(self.local.as_deref()).or(self.en.as_deref())
    }
}

/// Building use, the class that drives colour (L2) and the default height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildingUse {
    Residential,
    Commercial,
    Office,
    Industrial,
    Public,
    Education,
    Healthcare,
    Religious,
    Transport,
    Agricultural,
    Ancillary,
    Unknown,
}

impl BuildingUse {
    pub const ALL: [BuildingUse; 12] = [
        BuildingUse::Residential,
        BuildingUse::Commercial,
        BuildingUse::Office,
        BuildingUse::Industrial,
        BuildingUse::Public,
        BuildingUse::Education,
        BuildingUse::Healthcare,
        BuildingUse::Religious,
        BuildingUse::Transport,
        BuildingUse::Agricultural,
        BuildingUse::Ancillary,
        BuildingUse::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildingUse::Residential => "residential",
            BuildingUse::Commercial => "commercial",
            BuildingUse::Office => "office",
            BuildingUse::Industrial => "industrial",
            BuildingUse::Public => "public",
            BuildingUse::Education => "education",
            BuildingUse::Healthcare => "healthcare",
            BuildingUse::Religious => "religious",
            BuildingUse::Transport => "transport",
            BuildingUse::Agricultural => "agricultural",
            BuildingUse::Ancillary => "ancillary",
            BuildingUse::Unknown => "unknown",
        }
    }

    /// Default height in metres for a building of this use when the source gives neither a
    /// height nor a number of levels (docs/MODEL.md, "Heights"). Such buildings are flagged
    /// [`HeightSource::Estimated`].
    pub fn default_height(self) -> f32 {
        match self {
            BuildingUse::Residential => 18.0,
            BuildingUse::Commercial => 12.0,
            BuildingUse::Office => 24.0,
            BuildingUse::Industrial => 10.0,
            BuildingUse::Public => 15.0,
            BuildingUse::Education => 15.0,
            BuildingUse::Healthcare => 18.0,
            BuildingUse::Religious => 10.0,
            BuildingUse::Transport => 10.0,
            BuildingUse::Agricultural => 6.0,
            BuildingUse::Ancillary => 3.0,
            BuildingUse::Unknown => 9.0,
        }
    }
}

/// How a building's height was obtained, in order of precedence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeightSource {
    /// A measured height attribute (`height`, `HAUTEUR`, `BUILD_H`, `measuredHeight`, …), named.
    Attribute { name: String },
    /// Computed from the number of levels × [`METRES_PER_LEVEL`].
    Levels,
    /// From 3D geometry (CityJSON/CityGML/glTF/IFC): top minus bottom of the solid.
    Geometry,
    /// Set by the built-in generator.
    Generated,
    /// No height in the source: the default for its use ([`BuildingUse::default_height`]).
    Estimated,
}

/// Storey height used to turn `building:levels` into metres.
pub const METRES_PER_LEVEL: f32 = 3.0;

/// Level of detail a feature carries (DESIGN: L2 blocks, L3 roofs/facades, L4 1:1 models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    L2,
    L3,
    L4,
}

/// Semantic class of a 3D surface (CityGML/CityJSON semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurfaceKind {
    Ground,
    Wall,
    Roof,
    Closure,
    OuterCeiling,
    OuterFloor,
    Window,
    Door,
    Other,
}

/// One planar surface; `rings[0]` is the exterior, the rest are holes. Local ENU metres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Surface {
    pub kind: SurfaceKind,
    pub rings: Vec<Vec<[f32; 3]>>,
    /// CityGML appearance of the surface (first theme that targets it), if any.
    #[serde(default)]
    pub appearance: Option<SurfaceAppearance>,
}

/// A surface's appearance: a texture with one (u, v) per ring vertex (`uvs[r][i]` for
/// `rings[r][i]`), and/or an X3DMaterial colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurfaceAppearance {
    /// Index into [`Solid3d::textures`].
    pub texture: Option<u32>,
    /// Texture coordinates per ring vertex; empty without a texture.
    pub uvs: Vec<Vec<[f32; 2]>>,
    /// X3DMaterial diffuse colour (linear RGB) and 1 − transparency.
    pub colour: Option<[f32; 4]>,
}

/// 3D geometry of a CIM building (CityJSON/CityGML) in a local ENU frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solid3d {
    /// CityGML/CityJSON LoD of the geometry kept (e.g. 1.0, 2.2, 3.0).
    pub lod: f32,
    /// `[lon, lat, h]` of the local frame's origin (h in metres above the ellipsoid or the source's
    /// vertical datum, as given).
    pub anchor: [f64; 3],
    pub surfaces: Vec<Surface>,
    /// Texture images referenced by the surfaces' appearances: absolute paths of existing files
    /// (missing files are reported at ingest and their surfaces left untextured).
    #[serde(default)]
    pub textures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Building {
    /// Dense id: the building's index in [`CityModel::buildings`].
    pub id: u32,
    pub source: SourceRef,
    pub footprint: MultiPolygon<f64>,
    /// Top of the building above its base, metres.
    pub height: f32,
    /// Bottom of the building above the terrain (bridges, overhangs), metres.
    pub min_height: f32,
    pub height_source: HeightSource,
    pub levels: Option<u16>,
    pub use_: BuildingUse,
    pub names: Names,
    /// Index into [`CityModel::districts`] of the district containing the footprint's centroid.
    pub district: Option<u16>,
    pub level: Level,
    /// Roof shape when known (`flat`, `gabled`, `hipped`, …; OSM `roof:shape` vocabulary).
    pub roof_shape: Option<String>,
    /// Full 3D geometry for CityJSON/CityGML buildings.
    pub solid: Option<Solid3d>,
    /// Index into [`CityModel::cim_models`] when this building stands for a placed glTF/IFC model.
    pub cim_model: Option<u32>,
}

impl Building {
    /// A plain L2 block (id 0, base at the terrain, no levels, names, district, roof or solid):
    /// the starting point for generators and test fixtures, which then set what they need.
    pub fn block(source: SourceRef, footprint: MultiPolygon<f64>, height: f32, use_: BuildingUse) -> Building {
        Building {
            id: 0,
            source,
            footprint,
            height,
            min_height: 0.0,
            height_source: HeightSource::Generated,
            levels: None,
            use_,
            names: Names::default(),
            district: None,
            level: Level::L2,
            roof_shape: None,
            solid: None,
            cim_model: None,
        }
    }
}

/// Road class, OSM `highway` vocabulary reduced to what styles and routing need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoadClass {
    Motorway,
    Trunk,
    Primary,
    Secondary,
    Tertiary,
    Residential,
    Service,
    Path,
    Rail,
    Other,
}

impl RoadClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RoadClass::Motorway => "motorway",
            RoadClass::Trunk => "trunk",
            RoadClass::Primary => "primary",
            RoadClass::Secondary => "secondary",
            RoadClass::Tertiary => "tertiary",
            RoadClass::Residential => "residential",
            RoadClass::Service => "service",
            RoadClass::Path => "path",
            RoadClass::Rail => "rail",
            RoadClass::Other => "other",
        }
    }
    /// Default free-flow speed, km/h, used when the source has no `maxspeed` (routing). The
    /// design speeds of China's urban road code CJJ 37-2012 (2016 ed.), table 3.2.2: 快速路
    /// (expressway) 100/80/60, 主干路 (arterial) 60/50/40, 次干路 (collector) 50/40/30, 支路 (local)
    /// 40/30/20 km/h. Motorway = expressway middle, trunk = expressway lowest / arterial highest,
    /// primary = arterial middle, secondary = collector middle, tertiary = collector lowest,
    /// residential = local lowest, other = local lowest; service (driveways, parking aisles,
    /// campus roads) 15 is below the code's range (our choice); path = walking pace; rail 0.
    pub fn default_speed_kmh(self) -> f32 {
        match self {
            RoadClass::Motorway => 80.0,
            RoadClass::Trunk => 60.0,
            RoadClass::Primary => 50.0,
            RoadClass::Secondary => 40.0,
            RoadClass::Tertiary => 30.0,
            RoadClass::Residential => 20.0,
            RoadClass::Service => 15.0,
            RoadClass::Path => 5.0,
            RoadClass::Rail => 0.0,
            RoadClass::Other => 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Road {
    pub id: u32,
    pub source: SourceRef,
    pub class: RoadClass,
    pub geometry: LineString<f64>,
    pub names: Names,
    pub lanes: Option<u8>,
    pub oneway: bool,
    /// Explicit speed limit from the source (km/h), else `None` (use the class default).
    pub max_speed_kmh: Option<f32>,
    /// Bridge/tunnel layer (OSM `layer`), 0 on the ground.
    pub layer: i8,
}

/// A polygonal feature of the water or landuse layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaFeature {
    pub id: u32,
    pub source: SourceRef,
    /// Water: `river`, `lake`, `reservoir`, `pond`, `canal`, `water`. Landuse: `residential`,
    /// `commercial`, `industrial`, `retail`, `park`, `forest`, `grass`, `farmland`, `cemetery`,
    /// `education`, `healthcare`, `railway`, `construction`, … (OSM vocabulary).
    pub class: String,
    pub geometry: MultiPolygon<f64>,
    pub names: Names,
}

/// Point of interest kinds the live layer needs (dispatch bases, schools, parking, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoiKind {
    Hospital,
    FireStation,
    PoliceStation,
    School,
    Parking,
    GasStation,
    Government,
    Park,
    Station,
    Landmark,
    Other,
}

impl PoiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoiKind::Hospital => "hospital",
            PoiKind::FireStation => "fire_station",
            PoiKind::PoliceStation => "police_station",
            PoiKind::School => "school",
            PoiKind::Parking => "parking",
            PoiKind::GasStation => "gas_station",
            PoiKind::Government => "government",
            PoiKind::Park => "park",
            PoiKind::Station => "station",
            PoiKind::Landmark => "landmark",
            PoiKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poi {
    pub id: u32,
    pub source: SourceRef,
    pub kind: PoiKind,
    pub location: Point<f64>,
    pub names: Names,
    /// Capacity where it matters: parking spaces, hospital beds, fire engines.
    pub capacity: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct District {
    pub id: u16,
    pub source: SourceRef,
    /// Administrative division code (GB/T 2260), e.g. 210102 for 和平区; 0 if unknown.
    pub adcode: u32,
    pub names: Names,
    pub geometry: MultiPolygon<f64>,
    pub area_km2: f64,
}

/// A street-level division (街道/乡镇, the level below the district; GDAL features with
/// `admin_level` 7–9, a `level` of `street`/`town`/`township` or a 9/12-digit code; the built-in
/// city's from the NBS list with synthetic geometry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Street {
    /// Dense id: the street's index in [`CityModel::streets`].
    pub id: u32,
    pub source: SourceRef,
    /// NBS statistical division code (9 digits, e.g. 210102001, or the 12-digit form); 0 if unknown.
    pub code: u64,
    /// Index into [`CityModel::districts`] of the parent district: the district whose adcode is
    /// the code's first six digits, else the one containing the street's interior point.
    pub district: Option<u16>,
    pub names: Names,
    pub geometry: MultiPolygon<f64>,
    /// Geodesic (spherical) area, km².
    pub area_km2: f64,
}

/// A placed external 3D model (glTF/GLB or IFC) kept as a file reference; the 3D Tiles builder
/// reads its meshes from `path` with `placement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CimModel {
    pub id: u32,
    pub source: SourceRef,
    pub format: CimFormat,
    pub path: String,
    pub placement: Placement,
    pub names: Names,
    /// Counts of what the model holds (triangles, storeys, spaces, walls, windows, doors, …).
    pub stats: std::collections::BTreeMap<String, u64>,
    /// Axis-aligned extent in the model's placed local ENU frame, metres: `[min, max]`.
    pub extent: [[f32; 3]; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CimFormat {
    CityJson,
    CityGml,
    Gltf,
    Ifc,
}

/// Georeference of a model given in local metres: the model origin goes to `anchor`, rotated by
/// `heading_deg` (clockwise from north, about the up axis) and scaled by `scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub lon: f64,
    pub lat: f64,
    #[serde(default)]
    pub height: f64,
    #[serde(default)]
    pub heading_deg: f64,
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Which kind of model this is and how it may be shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// True for the built-in city: real boundaries, generated buildings/roads/POIs.
    pub generated: bool,
    /// Human-readable provenance shown by clients ("Generated city on real Shenyang district
    /// boundaries …", "© OpenStreetMap contributors").
    pub label: String,
    pub attribution: Vec<String>,
    pub seed: Option<u64>,
}

/// Description of one input, as recorded in the model and the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Path or DSN as given (passwords in DSNs are masked).
    pub path: String,
    /// `gdal:<driver>`, `cityjson`, `citygml`, `gltf`, `ifc`, `builtin`.
    pub kind: String,
    /// CRS of the source as an authority code or WKT name (`EPSG:3946`).
    pub crs: String,
    /// Declared horizontal datum when not the CRS's own (`gcj02`).
    pub datum: Option<String>,
}

/// The whole canonical model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CityModel {
    pub info: ModelInfo,
    pub sources: Vec<SourceInfo>,
    pub districts: Vec<District>,
    /// Street-level divisions (街道/乡镇), below the districts (format version 3).
    #[serde(default)]
    pub streets: Vec<Street>,
    pub buildings: Vec<Building>,
    pub roads: Vec<Road>,
    pub water: Vec<AreaFeature>,
    pub landuse: Vec<AreaFeature>,
    pub pois: Vec<Poi>,
    pub cim_models: Vec<CimModel>,
    /// The built-up area (the default city's modelled area), if defined.
    pub built_up: Option<MultiPolygon<f64>>,
}

impl CityModel {
    pub fn empty(name: &str) -> Self {
        CityModel {
            info: ModelInfo {
                name: name.to_string(),
                generated: false,
                label: String::new(),
                attribution: Vec::new(),
                seed: None,
            },
            sources: Vec::new(),
            districts: Vec::new(),
            streets: Vec::new(),
            buildings: Vec::new(),
            roads: Vec::new(),
            water: Vec::new(),
            landuse: Vec::new(),
            pois: Vec::new(),
            cim_models: Vec::new(),
            built_up: None,
        }
    }

    /// Reassigns dense ids (index order) in every layer. Call after layers are assembled.
    pub fn renumber(&mut self) {
        for (i, b) in self.buildings.iter_mut().enumerate() {
            b.id = i as u32;
        }
        for (i, r) in self.roads.iter_mut().enumerate() {
            r.id = i as u32;
        }
        for (i, w) in self.water.iter_mut().enumerate() {
            w.id = i as u32;
        }
        for (i, l) in self.landuse.iter_mut().enumerate() {
            l.id = i as u32;
        }
        for (i, p) in self.pois.iter_mut().enumerate() {
            p.id = i as u32;
        }
        for (i, d) in self.districts.iter_mut().enumerate() {
            d.id = i as u16;
        }
        for (i, s) in self.streets.iter_mut().enumerate() {
            s.id = i as u32;
        }
        for (i, c) in self.cim_models.iter_mut().enumerate() {
            c.id = i as u32;
        }
    }

    /// `[west, south, east, north]` over every layer, or `None` for an empty model.
    pub fn bbox(&self) -> Option<[f64; 4]> {
        use geo::BoundingRect;
        let mut acc: Option<[f64; 4]> = None;
        let mut add = |r: Option<geo_types::Rect<f64>>| {
            if let Some(r) = r {
                let (lo, hi) = (r.min(), r.max());
                acc = Some(match acc {
                    None => [lo.x, lo.y, hi.x, hi.y],
                    Some(a) => [a[0].min(lo.x), a[1].min(lo.y), a[2].max(hi.x), a[3].max(hi.y)],
                });
            }
        };
        for b in &self.buildings {
            add(b.footprint.bounding_rect());
        }
        for r in &self.roads {
            add(r.geometry.bounding_rect());
        }
        for a in self.water.iter().chain(&self.landuse) {
            add(a.geometry.bounding_rect());
        }
        for d in &self.districts {
            add(d.geometry.bounding_rect());
        }
        for s in &self.streets {
            add(s.geometry.bounding_rect());
        }
        for p in &self.pois {
            add(Some(geo_types::Rect::new(p.location.0, p.location.0)));
        }
        acc
    }
}
