//! The cluster's Lua scripts (`lua/*.lua`): every change of shared state is one script, so
//! that Redis runs it whole and in one order for every server (docs/CLUSTER.md, "Scripts").
//! Each script is `lua/common.lua` followed by its own body; they are loaded with SCRIPT
//! LOAD after every connect and run with EVALSHA by their SHA-1.

/// A script, by what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    Join,
    Leave,
    Post,
    Moderate,
    ServerBan,
    Names,
    List,
    Load,
    Renew,
    Release,
    Reap,
    Resync,
    Oper,
}

impl Script {
    pub const ALL: [Script; 13] = [
        Script::Join,
        Script::Leave,
        Script::Post,
        Script::Moderate,
        Script::ServerBan,
        Script::Names,
        Script::List,
        Script::Load,
        Script::Renew,
        Script::Release,
        Script::Reap,
        Script::Resync,
        Script::Oper,
    ];

    fn body(self) -> &'static str {
        match self {
            Script::Join => include_str!("lua/join.lua"),
            Script::Leave => include_str!("lua/leave.lua"),
            Script::Post => include_str!("lua/post.lua"),
            Script::Moderate => include_str!("lua/moderate.lua"),
            Script::ServerBan => include_str!("lua/server_ban.lua"),
            Script::Names => include_str!("lua/names.lua"),
            Script::List => include_str!("lua/list.lua"),
            Script::Load => include_str!("lua/load.lua"),
            Script::Renew => include_str!("lua/renew.lua"),
            Script::Release => include_str!("lua/release.lua"),
            Script::Reap => include_str!("lua/reap.lua"),
            Script::Resync => include_str!("lua/resync.lua"),
            Script::Oper => include_str!("lua/oper.lua"),
        }
    }
}

/// The scripts' full texts and their SHA-1 digests (hex), built once at start-up.
pub struct Scripts {
    texts: Vec<String>,
    digests: Vec<String>,
}

impl Scripts {
    pub fn new() -> Scripts {
        let texts: Vec<String> = Script::ALL
            .iter()
            .map(|s| [include_str!("lua/common.lua"), s.body()].join("\n"))
            .collect();
        let digests = texts
            .iter()
            .map(|t| sha1_smol::Sha1::from(t.as_bytes()).digest().to_string())
            .collect();
        Scripts { texts, digests }
    }

    /// The text SCRIPT LOAD sends.
    pub fn text(&self, script: Script) -> &str {
        &self.texts[script as usize]
    }

    /// The SHA-1 EVALSHA names it by.
    pub fn digest(&self, script: Script) -> &str {
        &self.digests[script as usize]
    }
}

impl Default for Scripts {
    fn default() -> Scripts {
        Scripts::new()
    }
}
