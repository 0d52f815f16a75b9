//! Prebuilt deployment packages: the `bootstrap` executable a function runs when its
//! `CodeUri` names an artifact ([`crate::template::Prebuilt`]) rather than a crate.
//!
//! A `bootstrap` file is run where it is; a `.zip` is extracted first, into a directory of
//! the emulator's own, as Lambda extracts a package before it runs `bootstrap` from its root
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::template::Prebuilt;

/// Why a prebuilt artifact cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The artifact or its extraction directory could not be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `.zip` is not a readable zip archive.
    #[error("cannot extract {path}: {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader reported.
        #[source]
        source: zip::result::ZipError,
    },
    /// The `.zip` has no `bootstrap` at its root.
    #[error("{path} has no bootstrap at its root (a custom runtime's package must)")]
    NoBootstrap {
        /// The archive.
        path: PathBuf,
    },
    /// The `bootstrap` file cannot be executed.
    #[error("{path} is not executable (chmod 755 it)")]
    NotExecutable {
        /// The file.
        path: PathBuf,
    },
}

/// The executable that runs a prebuilt artifact: the `bootstrap` file itself, or the one
/// extracted from the zip into `extract_to` (emptied first, so a rebuilt zip replaces what an
/// earlier run extracted), with mode 0755.
pub fn bootstrap(artifact: &Prebuilt, extract_to: &Path) -> Result<PathBuf, ArtifactError> {
    match artifact {
        Prebuilt::Bootstrap(path) => {
            let io = |source| ArtifactError::Io {
                path: path.clone(),
                source,
            };
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o111 == 0 {
                return Err(ArtifactError::NotExecutable { path: path.clone() });
            }
            Ok(path.clone())
        }
        Prebuilt::Zip(zip) => extract(zip, extract_to),
    }
}

fn extract(zip: &Path, dir: &Path) -> Result<PathBuf, ArtifactError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ArtifactError::Io { path, source }
    };
    let zip_err = |source| ArtifactError::Zip {
        path: zip.to_owned(),
        source,
    };
    let mut archive = zip::ZipArchive::new(File::open(zip).map_err(io(zip))?).map_err(zip_err)?;
    if archive.index_for_name("bootstrap").is_none() {
        return Err(ArtifactError::NoBootstrap {
            path: zip.to_owned(),
        });
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // `extract` refuses entries that would land outside `dir` (`..`, absolute paths).
    archive.extract(dir).map_err(zip_err)?;
    let bootstrap = dir.join("bootstrap");
    // A zip made on Windows or by a tool that drops Unix modes leaves it 0644.
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
        .map_err(io(&bootstrap))?;
    Ok(bootstrap)
}
