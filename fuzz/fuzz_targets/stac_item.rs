//! A STAC item as a server may send it -> a scene of each provider: no panic; the folder name
//! made from its id (and each band's file name) is a plain name: `[A-Za-z0-9._-]+`, never
//! starting with a dot; every asset href is judged by the href check without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::catalog::{ProviderConfig, ProviderKind, Scene, check_href};
use s2cr::fsutil::safe_name;

fn plain(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(item) = serde_json::from_slice::<s2cr::catalog::item::Item>(data) else { return };
    for kind in [ProviderKind::EarthSearch, ProviderKind::PlanetaryComputer, ProviderKind::Cdse, ProviderKind::Local] {
        let config = ProviderConfig::default_for(kind);
        let Some(scene) = Scene::from_item(&item, kind, &config) else { continue };
        let folder = safe_name(&scene.id);
        assert!(plain(&folder), "scene id {:?} gave the folder name {folder:?}", scene.id);
        for (band, href) in &scene.assets {
            let file = safe_name(band);
            assert!(plain(&file), "band {band:?} gave the file name {file:?}");
            let _ = check_href(&config, href);
        }
    }
});
