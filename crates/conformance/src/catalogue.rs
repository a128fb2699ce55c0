//! The catalogue's loader. The checks are data in `crates/conformance/catalogue/`, one
//! file per role under test; each file is built into the binary (so `figure2 check` works
//! from any directory) and read from disk instead when it is there, so edits take effect
//! without a rebuild.

use crate::client::ClientCatalogue;
use crate::server::ServerCatalogue;

/// The folder of the catalogue, relative to the workspace root.
pub const CATALOGUE_DIR: &str = "crates/conformance/catalogue";

/// One file of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogueFile {
    AuthorizationServer,
    ResourceServer,
    Client,
}

impl CatalogueFile {
    /// The server files, in the order they run.
    pub const SERVERS: [CatalogueFile; 2] = [Self::AuthorizationServer, Self::ResourceServer];

    pub fn file_name(self) -> &'static str {
        match self {
            Self::AuthorizationServer => "authorization-server.toml",
            Self::ResourceServer => "resource-server.toml",
            Self::Client => "client.toml",
        }
    }

    /// The copy built into the binary.
    pub fn builtin(self) -> &'static str {
        match self {
            Self::AuthorizationServer => include_str!("../catalogue/authorization-server.toml"),
            Self::ResourceServer => include_str!("../catalogue/resource-server.toml"),
            Self::Client => include_str!("../catalogue/client.toml"),
        }
    }

    /// The file from disk if it is there, else the built-in copy.
    pub fn text(self) -> String {
        std::fs::read_to_string(format!("{CATALOGUE_DIR}/{}", self.file_name()))
            .unwrap_or_else(|_| self.builtin().to_owned())
    }

    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        toml::from_str(&self.text()).map_err(|e| format!("{CATALOGUE_DIR}/{}: {e}", self.file_name()))
    }
}

/// Loads a server file (authorization server or resource server).
pub fn server_catalogue(file: CatalogueFile) -> Result<ServerCatalogue, String> {
    file.parse()
}

/// Loads the client file.
pub fn client_catalogue() -> Result<ClientCatalogue, String> {
    CatalogueFile::Client.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalogue_parses() {
        for file in CatalogueFile::SERVERS {
            let catalogue: ServerCatalogue =
                toml::from_str(file.builtin()).unwrap_or_else(|e| panic!("{}: {e}", file.file_name()));
            assert!(!catalogue.checks.is_empty());
        }
        let client: ClientCatalogue = toml::from_str(CatalogueFile::Client.builtin()).expect("client.toml");
        assert!(!client.checks.is_empty());
    }
}
