//! The module layers of ARCHITECTURE.md hold: `scripts/layers.py` finds no upward import and no
//! import cycle between files in `src/` (the layer table and the rules are in that script).

use std::path::Path;
use std::process::Command;

#[test]
fn modules_import_downward_only_and_no_files_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("scripts/layers.py"))
        .arg("--src")
        .arg(root.join("src"))
        .output()
        .expect("python3 runs (the layer check needs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/layers.py exited with {}:\n{stdout}{stderr}",
        output.status
    );
}
