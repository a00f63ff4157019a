//! WordPress's init script (`scripts/wordpress-install-core.sh`), run for real: bash, GNU tar, diff and find as
//! uid 33 (what the pod runs as, with fsGroup 33), on volume roots like the ones stores get — root-owned 0777 (a
//! local-path provisioner) and root:33 2775 (fsGroup). The image entrypoint's own copy is run the same way first,
//! to show the failure the script exists for. Needs root (to own the roots and become uid 33); it says so and
//! does nothing when run without.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output},
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/wordpress-install-core.sh"
);
const MAIL_PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/store-platform-mail.php"
);
const MARKER: &str = ".ht-store-platform-core";

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: this test needs root to own volume roots and run as uid 33");
            return;
        }
    };
}

fn sh(command: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .expect("sh");
    assert!(status.success(), "{command}");
}

/// A machine-wide scratch directory uid 33 can reach (temp dirs are 0700).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let scratch = Self { dir };
        scratch.make_source();
        let files = scratch.path("platform");
        std::fs::create_dir(&files).expect("mkdir");
        std::fs::copy(MAIL_PLUGIN, files.join("store-platform-mail.php")).expect("copy");
        scratch
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A WordPress core laid out like the image's /usr/src/wordpress: owned by www-data, directories 0775 (the mode
    /// tar fails to give a root it does not own), a .htaccess, bundled plugins and themes, a few thousand files.
    fn make_source(&self) {
        let src = self.path("src");
        for dir in [
            "wp-admin/css",
            "wp-includes/js",
            "wp-content/plugins/woocommerce/includes",
            "wp-content/themes/twentytwentyfive",
        ] {
            std::fs::create_dir_all(src.join(dir)).expect("mkdir");
        }
        std::fs::write(
            src.join("wp-includes/version.php"),
            "<?php\n$wp_version = '6.8.3';\n",
        )
        .expect("version");
        std::fs::write(
            src.join("wp-content/plugins/woocommerce/woocommerce.php"),
            "<?php\n/**\n * Plugin Name: WooCommerce\n * Version: 9.9.5\n */\n",
        )
        .expect("plugin header");
        std::fs::write(
            src.join("index.php"),
            "<?php require 'wp-blog-header.php';\n",
        )
        .expect("index");
        std::fs::write(
            src.join(".htaccess"),
            "# BEGIN WordPress\n# END WordPress\n",
        )
        .expect("htaccess");
        std::fs::write(
            src.join("wp-config-docker.php"),
            "<?php // read from the environment\n",
        )
        .expect("config");
        for i in 0..3000 {
            let dir = [
                "wp-admin/css",
                "wp-includes/js",
                "wp-content/plugins/woocommerce/includes",
            ][i % 3];
            std::fs::write(
                src.join(dir).join(format!("file-{i}.php")),
                format!("<?php // {i} {}\n", "x".repeat(i % 500)),
            )
            .expect("file");
        }
        sh(&format!(
            "chown -R 33:33 {0} && find {0} -type d -exec chmod 0775 {{}} +",
            src.display()
        ));
    }

    /// A fresh volume root owned as `owner` with `mode`.
    fn volume(&self, name: &str, owner: &str, mode: u32) -> PathBuf {
        let root = self.path(name);
        std::fs::create_dir(&root).expect("mkdir");
        sh(&format!("chown {owner} {}", root.display()));
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(mode)).expect("chmod");
        root
    }

    /// `command` through bash as uid 33 with group 33 (the pod's user and fsGroup), in `dir`.
    fn as_www_data(&self, dir: &Path, command: &str, env: &[(&str, &Path)]) -> Output {
        Command::new("setpriv")
            .args(["--reuid=33", "--regid=33", "--groups=33", "--"])
            .args(["bash", "-c", command])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .output()
            .expect("setpriv")
    }

    fn install_core(&self, target: &Path) -> Output {
        self.as_www_data(
            target,
            &format!("bash {SCRIPT}"),
            &[
                ("WORDPRESS_SOURCE", &self.path("src")),
                ("WORDPRESS_TARGET", target),
                ("PLATFORM_FILES", &self.path("platform")),
            ],
        )
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `diff -rq` of the core with the volume: lines for anything missing or different (the volume's own extra files
/// do not count).
fn differences(source: &Path, target: &Path) -> Vec<String> {
    let output = Command::new("diff")
        .arg("-rq")
        .arg(source)
        .arg(target)
        .output()
        .expect("diff");
    let only_target = format!("Only in {}", target.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with(&only_target))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_entrypoint_copy_fails_as_uid_33_on_a_volume_root_it_does_not_own() {
    require_root!();
    let scratch = Scratch::new();
    // The official image's entrypoint, as it runs for a non-root user (docker-entrypoint.sh).
    let entrypoint_copy = format!(
        "set -o pipefail; tar --create --file - --directory {} --owner 33 --group 33 . | tar --extract --file - --no-overwrite-dir",
        scratch.path("src").display()
    );
    for (name, owner, mode) in [("local-path", "0:0", 0o777), ("fs-group", "0:33", 0o2775)] {
        let root = scratch.volume(name, owner, mode);
        let output = scratch.as_www_data(&root, &entrypoint_copy, &[]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", text(&output));
        assert!(
            text(&output).contains("Cannot change mode"),
            "{name}: {}",
            text(&output)
        );
    }
}

#[test]
fn the_init_script_copies_a_complete_core_as_uid_33_on_either_volume_root() {
    require_root!();
    let scratch = Scratch::new();
    for (name, owner, mode) in [("local-path", "0:0", 0o777), ("fs-group", "0:33", 0o2775)] {
        let root = scratch.volume(name, owner, mode);
        let output = scratch.install_core(&root);
        assert!(output.status.success(), "{name}: {}", text(&output));
        assert!(
            text(&output).contains("WordPress 6.8.3 copied and verified"),
            "{name}: {}",
            text(&output)
        );
        assert_eq!(
            differences(&scratch.path("src"), &root),
            Vec::<String>::new(),
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join(MARKER)).expect("marker"),
            "6.8.3 wc 9.9.5\n"
        );
        let plugin = root.join("wp-content/mu-plugins/store-platform-mail.php");
        assert_eq!(
            std::fs::read(&plugin).expect("mail plugin"),
            std::fs::read(MAIL_PLUGIN).expect("source")
        );
        // Everything it wrote belongs to uid 33, so WordPress can update itself and its plugins later.
        let foreign = Command::new("find")
            .arg(&root)
            .args(["-mindepth", "1", "!", "-uid", "33"])
            .output()
            .expect("find");
        assert_eq!(String::from_utf8_lossy(&foreign.stdout), "", "{name}");
        // The root itself is left as the volume gave it.
        assert_eq!(std::fs::metadata(&root).expect("root").uid(), 0);
    }
}

#[test]
fn a_copy_cut_short_is_completed_at_the_next_start() {
    require_root!();
    let scratch = Scratch::new();
    let root = scratch.volume("volume", "0:0", 0o777);
    // What a killed first copy leaves: some files, one of them half-written, no marker, no wp-config.php.
    let partial = scratch.as_www_data(
        &root,
        &format!(
            "cp -r {0}/index.php {0}/wp-admin . && head -c 7 {0}/wp-includes/version.php > version.part && mkdir -p wp-includes && mv version.part wp-includes/version.php",
            scratch.path("src").display()
        ),
        &[],
    );
    assert!(partial.status.success(), "{}", text(&partial));
    assert!(!differences(&scratch.path("src"), &root).is_empty());
    let output = scratch.install_core(&root);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        differences(&scratch.path("src"), &root),
        Vec::<String>::new()
    );
    assert!(root.join(MARKER).exists());
}

#[test]
fn a_copy_that_cannot_complete_fails_and_leaves_no_marker() {
    require_root!();
    let scratch = Scratch::new();
    // A core file uid 33 cannot read.
    let unreadable = scratch.path("src/wp-admin/css/file-0.php");
    sh(&format!(
        "chown 0:0 {0} && chmod 0600 {0}",
        unreadable.display()
    ));
    let root = scratch.volume("volume", "0:0", 0o777);
    let output = scratch.install_core(&root);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(!root.join(MARKER).exists(), "{}", text(&output));
}

#[test]
fn a_started_store_is_left_alone_except_for_the_mail_plugin() {
    require_root!();
    let scratch = Scratch::new();
    let root = scratch.volume("volume", "0:0", 0o777);
    assert!(scratch.install_core(&root).status.success());
    // The owner edits a theme and removes a bundled plugin; someone edits the platform's plugin.
    let style = root.join("wp-content/themes/twentytwentyfive/style.css");
    sh(&format!(
        "echo 'body {{}}' > {} && rm -r {}/wp-content/plugins/woocommerce && echo '<?php // edited' > {}/wp-content/mu-plugins/store-platform-mail.php",
        style.display(),
        root.display(),
        root.display()
    ));
    let output = scratch.install_core(&root);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("already in place"),
        "{}",
        text(&output)
    );
    assert!(style.exists());
    assert!(
        !root.join("wp-content/plugins/woocommerce").exists(),
        "nothing copied again"
    );
    assert_eq!(
        std::fs::read(root.join("wp-content/mu-plugins/store-platform-mail.php")).expect("plugin"),
        std::fs::read(MAIL_PLUGIN).expect("source"),
        "the platform's plugin is the platform's"
    );
}

#[test]
fn a_store_from_before_the_init_step_gets_nothing_copied_over_it() {
    require_root!();
    let scratch = Scratch::new();
    let root = scratch.volume("volume", "0:0", 0o777);
    // The image's entrypoint copied the core and wrote wp-config.php; the owner has since removed a plugin.
    let copied = scratch.as_www_data(
        &root,
        &format!(
            "cp -r {}/. . && rm -r wp-content/plugins/woocommerce && echo '<?php' > wp-config.php",
            scratch.path("src").display()
        ),
        &[],
    );
    assert!(copied.status.success(), "{}", text(&copied));
    let output = scratch.install_core(&root);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("left as it is"), "{}", text(&output));
    assert!(!root.join("wp-content/plugins/woocommerce").exists());
    assert_eq!(
        std::fs::read_to_string(root.join(MARKER)).expect("marker"),
        "6.8.3 wc 9.9.5\n"
    );
}

#[test]
fn a_store_moving_to_another_version_gets_its_core_and_keeps_its_own_files() {
    require_root!();
    let scratch = Scratch::new();
    let root = scratch.volume("volume", "0:0", 0o777);
    assert!(scratch.install_core(&root).status.success());
    // The store's own files: its configuration, an upload, a plugin its owner added.
    sh(&format!(
        "cd {} && echo '<?php' > wp-config.php && mkdir -p wp-content/uploads wp-content/plugins/owners && \
         echo photo > wp-content/uploads/shoe.jpg && echo '<?php' > wp-content/plugins/owners/owners.php",
        root.display()
    ));
    // The upgrade's image: WooCommerce 9.10.0, with a file the old one had not.
    let src = scratch.path("src");
    sh(&format!(
        "cd {} && sed -i 's/Version: 9.9.5/Version: 9.10.0/' wp-content/plugins/woocommerce/woocommerce.php && \
         echo '<?php // new' > wp-content/plugins/woocommerce/includes/new-in-9.10.php && chown -R 33:33 .",
        src.display()
    ));
    let output = scratch.install_core(&root);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("replacing WordPress 6.8.3 wc 9.9.5 with 6.8.3 wc 9.10.0"),
        "{}",
        text(&output)
    );
    assert!(
        root.join("wp-content/plugins/woocommerce/includes/new-in-9.10.php")
            .exists()
    );
    assert_eq!(differences(&src, &root), Vec::<String>::new());
    for own in [
        "wp-config.php",
        "wp-content/uploads/shoe.jpg",
        "wp-content/plugins/owners/owners.php",
    ] {
        assert!(root.join(own).exists(), "{own} is the store's and stays");
    }
    assert_eq!(
        std::fs::read_to_string(root.join(MARKER)).expect("marker"),
        "6.8.3 wc 9.10.0\n"
    );
    // Started again on the same image: nothing to do.
    let again = scratch.install_core(&root);
    assert!(
        text(&again).contains("already in place"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_marker_from_before_woocommerce_was_recorded_is_taken_as_this_images_core() {
    require_root!();
    let scratch = Scratch::new();
    let root = scratch.volume("volume", "0:0", 0o777);
    assert!(scratch.install_core(&root).status.success());
    std::fs::write(root.join(MARKER), "6.8.3\n").expect("an old marker");
    std::fs::remove_file(root.join("wp-content/plugins/woocommerce/includes/file-2.php"))
        .expect("rm");
    let output = scratch.install_core(&root);
    assert!(
        text(&output).contains("already in place"),
        "{}",
        text(&output)
    );
    assert!(
        !root
            .join("wp-content/plugins/woocommerce/includes/file-2.php")
            .exists(),
        "nothing copied"
    );
    assert_eq!(
        std::fs::read_to_string(root.join(MARKER)).expect("marker"),
        "6.8.3 wc 9.9.5\n"
    );
}
