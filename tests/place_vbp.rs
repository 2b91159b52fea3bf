//! A few small instances of the public vector bin packing benchmark: the placement uses at least
//! the published lower bound of machines (a sanity check of the count), no more than plain
//! first-fit decreasing, and keeps every invariant. The instances live in `benches/data/vbp`. The full quality figure is
//! `cargo bench --bench place_vbp`.

#[path = "place_support.rs"]
mod support;

use kloud::place::place;

#[test]
fn small_instances_are_sound_and_within_bounds() {
    // The instances are kept in the repository (benches/data/vbp); KLOUD_VBP_DIR overrides.
    let dir = support::vbp_dir().expect("vbp benchmark: benches/data/vbp or KLOUD_VBP_DIR");
    let known = support::known(&dir);
    for name in [
        "class1_20_3_1",
        "class4_40_3_2",
        "class5_60_3_0",
        "class6_20_3_9",
        "class7_40_3_3",
        "class9_60_3_5",
    ] {
        let problem = support::load_vbp(&dir.join("instances").join(format!("{name}.vbp")));
        let placement = place(&problem);
        support::assert_sound(&problem, &placement);
        assert!(placement.unplaced.is_empty(), "{name}");
        let used = support::machines_used(&placement);
        let (lb, _, _, _) = known[name];
        let ffd = support::ffd(&problem);
        assert!(
            used >= lb,
            "{name}: {used} machines is below the lower bound {lb}"
        );
        assert!(
            used <= ffd,
            "{name}: {used} machines, plain FFD needs {ffd}"
        );
    }
}
