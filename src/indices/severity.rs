//! Burn severity classes: a scheme is a list of classes (code, name, colour, lower bound) on
//! the dNBR or on BAER's BARC256 scale, and the least severe class counted as burned. Presets:
//! USGS (Key & Benson 2006, FIREMON Landscape Assessment Table LA-4 as UN-SPIDER shows it,
//! codes 1-7) and BARC4 (BAER's four classes over BARC256); any other list is the analyst's
//! own. The class code is the value written to a severity raster; 0 is no data.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The code of a pixel without a class.
pub const NO_DATA: u8 = 0;

/// The colour of a pixel without a class.
pub const NO_DATA_COLOR: [u8; 3] = [255, 255, 255];

/// BARC256 of a dNBR, as BAER delivers it: the dNBR x 1000 as an integer (rounded), plus 275,
/// divided by 5 and truncated, clamped to 0-255; `None` where the dNBR is not finite.
pub fn barc256(dnbr: f32) -> Option<u8> {
    dnbr.is_finite().then(|| (((dnbr as f64 * 1000.0).round() + 275.0) / 5.0).floor().clamp(0.0, 255.0) as u8)
}

/// The lowest dNBR (as f32) whose BARC256 is `value` or more: about (5 x value - 275 - 0.5) /
/// 1000, the rounding of [`barc256`] included.
pub fn dnbr_of_barc256(value: f32) -> f32 {
    let target = value.ceil();
    if target <= 0.0 {
        return f32::NEG_INFINITY;
    } else if target > 255.0 {
        return f32::INFINITY;
    }
    let mut d = ((target as f64 * 5.0 - 275.0 - 0.5) / 1000.0) as f32;
    // The nearest f32 may round either way: step to the first one in the class.
    while barc256(d).is_some_and(|v| (v as f32) < target) {
        d = d.next_up();
    }
    while barc256(d.next_down()).is_some_and(|v| v as f32 >= target) {
        d = d.next_down();
    }
    d
}

/// What a scheme's bounds are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// The dNBR (after the offset, when there is one).
    #[default]
    Dnbr,
    /// BARC256: (dNBR x 1000 + 275) / 5, 0-255.
    Barc256,
}

impl Scale {
    /// A dNBR on this scale.
    pub fn value(self, dnbr: f32) -> f32 {
        match self {
            Scale::Dnbr => dnbr,
            Scale::Barc256 => barc256(dnbr).map_or(f32::NAN, f32::from),
        }
    }

    /// The lowest dNBR at or above a bound on this scale.
    pub fn dnbr_of(self, bound: f32) -> f32 {
        match self {
            Scale::Dnbr => bound,
            Scale::Barc256 => dnbr_of_barc256(bound),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scale::Dnbr => "dNBR",
            Scale::Barc256 => "BARC256",
        }
    }
}

/// One class of a scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityClass {
    /// The value in a severity raster (1-255, increasing with severity).
    pub code: u8,
    pub name: String,
    /// `#rrggbb` in files.
    #[serde(with = "hex_color")]
    pub color: [u8; 3],
    /// The class's lower bound on the scheme's scale (a value equal to it belongs to this
    /// class); none for the first class, which takes everything below the second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f32>,
}

/// A list of severity classes and the least severe one counted as burned. Read from a preset's
/// name (`usgs`, `barc4`), from `{preset, bounds, burned_from}`, from a whole list
/// (`{name, scale, classes, burned_from}`), or from the six USGS bounds settings before
/// schemes held (read as USGS with those bounds); always written whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityScheme {
    /// `USGS`, `BARC4`, `CBI` or `own`.
    pub name: String,
    pub scale: Scale,
    /// Ordered by severity: codes and bounds increase.
    pub classes: Vec<SeverityClass>,
    /// The name of the least severe class counted as burned.
    pub burned_from: String,
}

fn class(code: u8, name: &str, color: [u8; 3], from: Option<f32>) -> SeverityClass {
    SeverityClass { code, name: name.into(), color, from }
}

impl Default for SeverityScheme {
    fn default() -> Self {
        SeverityScheme::usgs()
    }
}

/// Letters and digits of a class name, lower case: how names are matched.
fn key(name: &str) -> String {
    key_chars(name).collect()
}

fn key_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase)
}

/// The codes of a scheme's burned classes: [`SeverityScheme::is_burned`] without looking the
/// burned class up by name at every pixel (that was a tenth of the assessment's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnedCodes(u16);

impl BurnedCodes {
    /// Whether a class code counts as burned.
    pub fn contains(self, code: u8) -> bool {
        code != NO_DATA && code as u16 >= self.0
    }
}

impl SeverityScheme {
    /// The presets' names, as settings spell them.
    pub const PRESETS: [&'static str; 2] = ["usgs", "barc4"];

    /// USGS / Key & Benson (2006) dNBR classes, codes 1-7, with the usual UN-SPIDER colours.
    pub fn usgs() -> SeverityScheme {
        SeverityScheme {
            name: "USGS".into(),
            scale: Scale::Dnbr,
            classes: vec![
                class(1, "enhanced regrowth, high", [122, 135, 55], None),
                class(2, "enhanced regrowth, low", [172, 190, 77], Some(-0.25)),
                class(3, "unburned", [10, 224, 66], Some(-0.1)),
                class(4, "low severity", [255, 248, 27], Some(0.1)),
                class(5, "moderate-low severity", [255, 165, 31], Some(0.27)),
                class(6, "moderate-high severity", [255, 51, 45], Some(0.44)),
                class(7, "high severity", [167, 31, 208], Some(0.66)),
            ],
            burned_from: "low severity".into(),
        }
    }

    /// BAER's BARC4 over BARC256 (bounds 76, 110, 188: dNBR 0.105, 0.275, 0.665), in the
    /// colours BAER's Burned Area Reflectance Classification maps use.
    pub fn barc4() -> SeverityScheme {
        SeverityScheme {
            name: "BARC4".into(),
            scale: Scale::Barc256,
            classes: vec![
                class(1, "unburned", [0, 100, 0], None),
                class(2, "low", [127, 255, 212], Some(76.0)),
                class(3, "moderate", [255, 255, 0], Some(110.0)),
                class(4, "high", [255, 0, 0], Some(188.0)),
            ],
            burned_from: "low".into(),
        }
    }

    /// A preset by name (case does not matter).
    pub fn preset(name: &str) -> Option<SeverityScheme> {
        match key(name).as_str() {
            "usgs" => Some(SeverityScheme::usgs()),
            "barc4" | "barc" => Some(SeverityScheme::barc4()),
            _ => None,
        }
    }

    /// Everything wrong with the scheme, in one message.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.classes.len() < 2 {
            problems.push(format!("give at least two classes (got {})", self.classes.len()));
        }
        for (i, c) in self.classes.iter().enumerate() {
            if c.code == NO_DATA {
                problems.push(format!("class {:?}: code 0 is no data; use 1-255", c.name));
            }
            if c.name.trim().is_empty() {
                problems.push(format!("class {} (code {}) has no name", i + 1, c.code));
            }
            match (i, c.from) {
                (0, Some(_)) => problems.push(format!("the first class {:?} takes everything below the second: give it no bound", c.name)),
                (0, None) => {}
                (_, None) => problems.push(format!("class {:?} has no lower bound (`from`)", c.name)),
                (_, Some(v)) if !v.is_finite() => problems.push(format!("class {:?}: bound {v} is not a number", c.name)),
                _ => {}
            }
        }
        for w in self.classes.windows(2) {
            if w[1].code <= w[0].code {
                problems.push(format!("codes must increase with severity: {:?} ({}) then {:?} ({})", w[0].name, w[0].code, w[1].name, w[1].code));
            }
            if let (Some(a), Some(b)) = (w[0].from, w[1].from)
                && b <= a
            {
                problems.push(format!("bounds must increase: {:?} from {a} then {:?} from {b}", w[0].name, w[1].name));
            }
        }
        for (i, c) in self.classes.iter().enumerate() {
            if self.classes[..i].iter().any(|o| key(&o.name) == key(&c.name)) {
                problems.push(format!("two classes are named {:?}", c.name));
            }
        }
        if self.burned_index().is_none() {
            let names: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
            problems.push(format!("burned_from {:?} is none of the classes ({})", self.burned_from, names.join(", ")));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }

    /// The position of a class by name: letters and digits compared without case, and a name
    /// without the word "severity" ("moderate-low" for "moderate-low severity").
    pub fn find(&self, name: &str) -> Option<usize> {
        // Compared character by character: no string is made (`is_burned` may be asked per pixel).
        self.classes.iter().position(|c| key_chars(&c.name).eq(key_chars(name)) || key_chars(&c.name).eq(key_chars(name).chain("severity".chars())))
    }

    fn burned_index(&self) -> Option<usize> {
        self.find(&self.burned_from)
    }

    /// The code of the least severe burned class (255 + 1 never: a scheme that does not
    /// validate counts nothing as burned).
    pub fn burned_code(&self) -> u16 {
        self.burned_index().map_or(256, |i| self.classes[i].code as u16)
    }

    /// The class of a dNBR (after any offset): its code, [`NO_DATA`] where it is not finite.
    pub fn classify(&self, dnbr: f32) -> u8 {
        let v = self.scale.value(dnbr);
        if !v.is_finite() {
            return NO_DATA;
        }
        let mut code = self.classes.first().map_or(NO_DATA, |c| c.code);
        for c in &self.classes[1.min(self.classes.len())..] {
            match c.from {
                Some(b) if v >= b => code = c.code,
                _ => break,
            }
        }
        code
    }

    /// Whether a class code counts as burned (finds the burned class by name: in a loop over
    /// pixels, take [`SeverityScheme::burned_codes`] once instead).
    pub fn is_burned(&self, code: u8) -> bool {
        self.burned_codes().contains(code)
    }

    /// The burned codes, found once, for loops over pixels.
    pub fn burned_codes(&self) -> BurnedCodes {
        BurnedCodes(self.burned_code())
    }

    /// The lowest dNBR counted as burned.
    pub fn burned_dnbr(&self) -> f32 {
        match self.burned_index() {
            Some(0) => f32::NEG_INFINITY,
            Some(i) => self.classes[i].from.map_or(f32::INFINITY, |b| self.scale.dnbr_of(b)),
            None => f32::INFINITY,
        }
    }

    /// Classes of a dNBR raster.
    pub fn classify_all(&self, dnbr: &[f32]) -> Vec<u8> {
        dnbr.iter().map(|v| self.classify(*v)).collect()
    }

    /// The position of a code among the classes.
    pub fn index_of(&self, code: u8) -> Option<usize> {
        self.classes.iter().position(|c| c.code == code)
    }

    /// A code's name ("no data" for 0, "class N" for a code the scheme lacks).
    pub fn label(&self, code: u8) -> String {
        match self.index_of(code) {
            Some(i) => self.classes[i].name.clone(),
            None if code == NO_DATA => "no data".into(),
            None => format!("class {code}"),
        }
    }

    /// A code's colour (white for no data, black for a code the scheme lacks).
    pub fn color(&self, code: u8) -> [u8; 3] {
        match self.index_of(code) {
            Some(i) => self.classes[i].color,
            None if code == NO_DATA => NO_DATA_COLOR,
            None => [0, 0, 0],
        }
    }

    /// The classes as a class map's table: (code, colour, name).
    pub fn palette(&self) -> Vec<(u8, [u8; 3], &str)> {
        self.classes.iter().map(|c| (c.code, c.color, c.name.as_str())).collect()
    }

    /// Each class's range on the scheme's scale, as text: "< -0.25", "-0.25 to < -0.1", "≥ 0.66".
    pub fn ranges(&self) -> Vec<String> {
        let n = self.classes.len();
        (0..n)
            .map(|i| {
                let lo = self.classes[i].from;
                let hi = self.classes.get(i + 1).and_then(|c| c.from);
                match (lo, hi) {
                    (None, Some(h)) => format!("< {h}"),
                    (Some(l), Some(h)) => format!("{l} to < {h}"),
                    (Some(l), None) => format!("≥ {l}"),
                    (None, None) => "all".into(),
                }
            })
            .collect()
    }

    /// The lower bounds of the classes after the first.
    pub fn bounds(&self) -> Vec<f32> {
        self.classes.iter().skip(1).map(|c| c.from.unwrap_or(f32::NAN)).collect()
    }

    /// The scheme with other lower bounds for its classes after the first (one each), checked.
    pub fn with_bounds(&self, bounds: &[f32]) -> Result<SeverityScheme, String> {
        if bounds.len() + 1 != self.classes.len() {
            return Err(format!("{} has {} classes: give {} increasing bounds on the {} (now {}), got {}", self.name, self.classes.len(), self.classes.len().saturating_sub(1), self.scale.name(), self.bounds().iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","), bounds.len()));
        }
        let mut s = self.clone();
        for (c, b) in s.classes.iter_mut().skip(1).zip(bounds) {
            c.from = Some(*b);
        }
        s.validate()?;
        Ok(s)
    }
}

/// A scheme as settings give it; see [`SeverityScheme`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemeFields {
    preset: Option<String>,
    name: Option<String>,
    scale: Option<Scale>,
    classes: Option<Vec<SeverityClass>>,
    bounds: Option<Vec<f32>>,
    burned_from: Option<String>,
    // The USGS bounds as settings held them before schemes.
    regrowth_high_below: Option<f32>,
    regrowth_low_below: Option<f32>,
    low_from: Option<f32>,
    moderate_low_from: Option<f32>,
    moderate_high_from: Option<f32>,
    high_from: Option<f32>,
}

impl SchemeFields {
    fn scheme(self) -> Result<SeverityScheme, String> {
        let legacy = [self.regrowth_high_below, self.regrowth_low_below, self.low_from, self.moderate_low_from, self.moderate_high_from, self.high_from];
        let mut s = if legacy.iter().any(Option::is_some) {
            let bounds: Vec<f32> = legacy.iter().map(|b| b.ok_or("the six USGS bounds (regrowth_high_below ... high_from) go together; or give `preset: usgs` with `bounds`"))
                .collect::<Result<_, _>>()?;
            SeverityScheme::usgs().with_bounds(&bounds)?
        } else if let Some(classes) = self.classes {
            if self.preset.is_some() {
                return Err("give either `preset` or `classes`, not both".into());
            }
            let burned_from = self.burned_from.clone().ok_or("an own scheme names its least severe burned class: `burned_from`")?;
            SeverityScheme { name: self.name.clone().unwrap_or_else(|| "own".into()), scale: self.scale.unwrap_or_default(), classes, burned_from }
        } else {
            let p = self.preset.as_deref().ok_or("give `preset` (usgs, barc4) or `classes`")?;
            SeverityScheme::preset(p).ok_or_else(|| format!("no preset {p:?}: use one of {}", SeverityScheme::PRESETS.join(", ")))?
        };
        if let Some(b) = &self.bounds {
            s = s.with_bounds(b)?;
        }
        if let Some(n) = self.name {
            s.name = n;
        }
        if let Some(b) = self.burned_from {
            // The names before schemes: Low, ModerateLow, ModerateHigh, High.
            s.burned_from = b;
        }
        s.validate()?;
        Ok(s)
    }
}

impl<'de> Deserialize<'de> for SeverityScheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeverityScheme;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a severity scheme: a preset's name ({}) or a map with `preset` or `classes`", SeverityScheme::PRESETS.join(", "))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeverityScheme, E> {
                SeverityScheme::preset(v).ok_or_else(|| E::custom(format!("no severity preset {v:?}: use one of {}, or give the classes", SeverityScheme::PRESETS.join(", "))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SeverityScheme, A::Error> {
                let fields = SchemeFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                fields.scheme().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

mod hex_color {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &[u8; 3], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 3], D::Error> {
        let t = String::deserialize(d)?;
        super::parse_color(&t).ok_or_else(|| serde::de::Error::custom(format!("colour {t:?}: give #rrggbb, e.g. #ff0000")))
    }
}

/// `#rrggbb` (or without `#`) as RGB.
pub fn parse_color(text: &str) -> Option<[u8; 3]> {
    let h = text.trim().trim_start_matches('#');
    if h.len() != 6 || !h.is_ascii() {
        return None;
    }
    let at = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([at(0)?, at(2)?, at(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usgs_boundary_falls_in_the_class_above() {
        let t = SeverityScheme::usgs();
        let cases = [
            (-0.2501, 1),
            (-0.25, 2),
            (-0.1001, 2),
            (-0.1, 3),
            (0.0999, 3),
            (0.1, 4),
            (0.2699, 4),
            (0.27, 5),
            (0.4399, 5),
            (0.44, 6),
            (0.6599, 6),
            (0.66, 7),
            (1.3, 7),
            (f32::NAN, NO_DATA),
        ];
        for (v, expected) in cases {
            assert_eq!(t.classify(v), expected, "dNBR {v}");
        }
        assert!(t.is_burned(4) && !t.is_burned(3) && !t.is_burned(NO_DATA));
        assert_eq!(t.burned_dnbr(), 0.1);
        let strict = SeverityScheme { burned_from: "moderate-low".into(), ..t.clone() };
        assert!(strict.validate().is_ok());
        assert!(!strict.is_burned(4) && strict.is_burned(5));
        assert_eq!(t.label(7), "high severity");
        assert_eq!(t.color(0), NO_DATA_COLOR);
    }

    #[test]
    fn barc256_against_a_hand_computation() {
        // (dNBR x 1000 + 275) / 5, truncated, clamped to 0-255.
        for (dnbr, expected) in [(0.0, 55), (0.1, 75), (0.105, 76), (0.27, 109), (0.275, 110), (0.66, 187), (0.665, 188), (-0.3, 0), (-0.275, 0), (1.0, 255), (0.999, 254), (0.2251, 100)] {
            assert_eq!(barc256(dnbr), Some(expected), "dNBR {dnbr}");
        }
        assert_eq!(barc256(f32::NAN), None);
        // The BARC4 classes over it, and their dNBR bounds.
        let b = SeverityScheme::barc4();
        assert!(b.validate().is_ok());
        assert_eq!([0.104, 0.105, 0.274, 0.275, 0.664, 0.665].map(|d| b.classify(d)), [1, 2, 2, 3, 3, 4]);
        assert!((b.burned_dnbr() - 0.1045).abs() < 1e-6);
        assert_eq!(barc256(b.burned_dnbr()), Some(76));
        assert_eq!(barc256(b.burned_dnbr() - 1e-5), Some(75));
        assert!(b.is_burned(2) && !b.is_burned(1));
    }

    #[test]
    fn schemes_are_checked_whole() {
        assert!(SeverityScheme::usgs().validate().is_ok());
        let e = SeverityScheme::usgs().with_bounds(&[-0.25, -0.1, 0.5, 0.27, 0.44, 0.66]).unwrap_err();
        assert!(e.contains("bounds must increase"), "{e}");
        let e = SeverityScheme::usgs().with_bounds(&[0.1, 0.2]).unwrap_err();
        assert!(e.contains("give 6 increasing bounds"), "{e}");
        // An own list without classes, given bounds, is refused with words, not a panic.
        let e = serde_json::from_str::<SeverityScheme>(r#"{"classes": [], "bounds": [0.1], "burned_from": "x"}"#).unwrap_err().to_string();
        assert!(e.contains("has 0 classes"), "{e}");
        let mut s = SeverityScheme::barc4();
        s.classes[2].code = 1;
        s.burned_from = "scorched".into();
        let e = s.validate().unwrap_err();
        assert!(e.contains("codes must increase") && e.contains("burned_from \"scorched\""), "{e}");
    }

    #[test]
    fn settings_read_presets_own_lists_and_the_old_bounds() {
        let s: SeverityScheme = serde_json::from_str("\"BARC4\"").unwrap();
        assert_eq!(s, SeverityScheme::barc4());
        let s: SeverityScheme = serde_json::from_str(r#"{"preset": "barc4", "bounds": [70, 120, 200], "burned_from": "moderate"}"#).unwrap();
        assert_eq!((s.bounds(), s.burned_code()), (vec![70.0, 120.0, 200.0], 3));
        // Written whole, read back the same.
        let back: SeverityScheme = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let own: SeverityScheme = serde_json::from_str(r##"{"classes": [{"code": 1, "name": "not burned", "color": "#00ff00"}, {"code": 9, "name": "burned", "color": "#FF0000", "from": 0.2}], "burned_from": "burned"}"##).unwrap();
        assert_eq!((own.name.as_str(), own.classify(0.2), own.classify(0.19), own.color(9)), ("own", 9, 1, [255, 0, 0]));
        // Settings before schemes: the USGS bounds and Severity's variant names.
        let old: SeverityScheme = serde_json::from_str(r#"{"regrowth_high_below": -0.25, "regrowth_low_below": -0.1, "low_from": 0.12, "moderate_low_from": 0.27, "moderate_high_from": 0.44, "high_from": 0.66, "burned_from": "ModerateLow"}"#).unwrap();
        assert_eq!((old.name.as_str(), old.classify(0.11), old.burned_code()), ("USGS", 3, 5));
        for (bad, says) in [("\"mtbs\"", "no severity preset"), (r#"{"preset": "usgs", "colour": 1}"#, "unknown field `colour`"), (r#"{"preset": "usgs", "burned_from": "x"}"#, "burned_from \"x\""), (r##"{"classes": [{"code": 1, "name": "a", "color": "red"}], "burned_from": "a"}"##, "#rrggbb")] {
            let e = serde_json::from_str::<SeverityScheme>(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
