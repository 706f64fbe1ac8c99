//! `zdbctl auth`, `zdbctl user` and `zdbctl role`: turning authentication
//! on and off, and managing users, roles and the permissions roles hold on
//! key spans. Lists print one line per user or role, fields separated by
//! tabs, so scripts can read them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use zdb_client::{Access, Client};

use crate::keyspan;
use crate::prompt;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Whether authentication is on, and who you are to the cluster.
    Status,
    /// Turn authentication on (needs TLS): every call must then name a user
    /// with the permission for it. Creates user root (admin on every key)
    /// if it does not exist.
    Enable {
        /// root's password; without it, root logs in with its client
        /// certificate (client.root.crt) only.
        #[arg(long)]
        root_password: Option<String>,
    },
    /// Turn authentication off: every call is allowed again.
    Disable,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add user NAME; without --password, NAME logs in with a client
    /// certificate (zdbctl cert create-client NAME) only.
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete user NAME.
    Delete { name: String },
    /// Set NAME's password (asked for on the terminal without --password);
    /// NAME's tokens stop working.
    Passwd {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Give user NAME role ROLE.
    Grant { name: String, role: String },
    /// Take role ROLE from user NAME.
    Revoke { name: String, role: String },
    /// One line per user: NAME, then its roles, comma-separated.
    List,
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Add role NAME, with no permissions.
    Add { name: String },
    /// Delete role NAME (users holding it lose it).
    Delete { name: String },
    /// Let ROLE read, write, or administer the keys of a span.
    Grant {
        role: String,
        #[arg(long, value_enum)]
        access: AccessArg,
        #[command(flatten)]
        span: SpanArgs,
    },
    /// Take from ROLE its permission on a span (named as it was granted).
    Revoke {
        role: String,
        #[command(flatten)]
        span: SpanArgs,
    },
    /// One line per role: NAME, then each permission as ACCESS [START, END).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AccessArg {
    Read,
    Write,
    Readwrite,
    /// Read, write, and administer (over every key: users, roles, admin calls).
    Admin,
}

/// The keys a permission covers: a prefix, a range, or every key.
#[derive(Args)]
#[group(required = true, multiple = true)]
pub struct SpanArgs {
    /// Every key starting with P.
    #[arg(long, value_name = "P", conflicts_with_all = ["start", "end", "all"])]
    prefix: Option<String>,
    /// Keys from S on (up to --end, if given).
    #[arg(long, value_name = "S", conflicts_with = "all")]
    start: Option<String>,
    /// Keys before E.
    #[arg(long, value_name = "E", requires = "start")]
    end: Option<String>,
    /// Every key.
    #[arg(long)]
    all: bool,
}

impl SpanArgs {
    fn span(&self) -> (Vec<u8>, Vec<u8>) {
        match (&self.prefix, &self.start) {
            (Some(prefix), _) => keyspan::prefix_span(prefix.as_bytes()),
            (None, Some(start)) => (
                start.as_bytes().to_vec(),
                self.end.clone().unwrap_or_default().into_bytes(),
            ),
            // --all (clap makes sure one of them is given).
            (None, None) => (Vec::new(), Vec::new()),
        }
    }
}

fn access(arg: AccessArg) -> Access {
    match arg {
        AccessArg::Read => Access::Read,
        AccessArg::Write => Access::Write,
        AccessArg::Readwrite => Access::ReadWrite,
        AccessArg::Admin => Access::Admin,
    }
}

fn access_name(access: i32) -> &'static str {
    match Access::try_from(access) {
        Ok(Access::Read) => "read",
        Ok(Access::Write) => "write",
        Ok(Access::ReadWrite) => "readwrite",
        Ok(Access::Admin) => "admin",
        Ok(Access::Unspecified) | Err(_) => "unknown",
    }
}

pub async fn auth(client: &Client, command: AuthCommand) -> Result<ExitCode> {
    match command {
        AuthCommand::Status => {
            let status = client.auth_status().await?;
            let user = match status.user.as_str() {
                "" => "(anonymous)",
                user => user,
            };
            let method = match status.method.as_str() {
                "" => "none",
                method => method,
            };
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "enabled: {}",
                if status.enabled { "yes" } else { "no" }
            )?;
            writeln!(out, "user: {user}")?;
            writeln!(out, "method: {method}")?;
        }
        AuthCommand::Enable { root_password } => {
            let root_password = root_password.unwrap_or_default();
            client.auth_enable(&root_password).await?;
            println!("OK: authentication is on");
            if root_password.is_empty() {
                println!("a new user root logs in with its client certificate only; give it a password with `zdbctl user passwd root`");
            }
        }
        AuthCommand::Disable => {
            client.auth_disable().await?;
            println!("OK: authentication is off");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn user(client: &Client, command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add { name, password } => {
            client
                .user_add(&name, password.as_deref().unwrap_or_default())
                .await?
        }
        UserCommand::Delete { name } => client.user_delete(&name).await?,
        UserCommand::Passwd { name, password } => {
            let password = match password {
                Some(password) => password,
                None => match prompt::password(&format!("new password for {name}: "))? {
                    Some(password) => password,
                    None => bail!("give the new password with --password (or run zdbctl on a terminal to be asked)"),
                },
            };
            client.user_change_password(&name, &password).await?
        }
        UserCommand::Grant { name, role } => client.user_grant_role(&name, &role).await?,
        UserCommand::Revoke { name, role } => client.user_revoke_role(&name, &role).await?,
        UserCommand::List => {
            let mut out = std::io::stdout().lock();
            for user in client.user_list().await? {
                writeln!(out, "{}\t{}", user.name, user.roles.join(","))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

pub async fn role(client: &Client, command: RoleCommand) -> Result<ExitCode> {
    match command {
        RoleCommand::Add { name } => client.role_add(&name).await?,
        RoleCommand::Delete { name } => client.role_delete(&name).await?,
        RoleCommand::Grant {
            role,
            access: granted,
            span,
        } => {
            let (start, end) = span.span();
            client
                .role_grant(&role, access(granted), &start, &end)
                .await?
        }
        RoleCommand::Revoke { role, span } => {
            let (start, end) = span.span();
            client.role_revoke(&role, &start, &end).await?
        }
        RoleCommand::List => {
            let mut out = std::io::stdout().lock();
            for role in client.role_list().await? {
                let mut line = role.name.clone();
                for permission in &role.permissions {
                    line.push('\t');
                    line.push_str(access_name(permission.access));
                    line.push(' ');
                    line.push_str(&keyspan::describe(&permission.start, &permission.end));
                }
                writeln!(out, "{line}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("zdbctl").chain(args.iter().copied()))
    }

    /// The login's password goes before the command; the one after `user
    /// add` is the new user's, and neither leaks into the other.
    #[test]
    fn login_and_new_user_passwords_stay_apart() {
        let cli = parse(&[
            "--user",
            "root",
            "--password",
            "rootpw",
            "user",
            "add",
            "alice",
            "--password",
            "pw",
        ])
        .unwrap();
        assert_eq!(cli.security.password.as_deref(), Some("rootpw"));
        let Command::User(UserCommand::Add { name, password }) = cli.command else {
            panic!("not user add");
        };
        assert_eq!((name.as_str(), password.as_deref()), ("alice", Some("pw")));

        let cli = parse(&["user", "add", "bob", "--password", "pw"]).unwrap();
        assert_eq!(cli.security.password, None);
    }

    /// The TLS flags may follow any command, whatever its arguments are called.
    #[test]
    fn tls_flags_follow_commands_with_a_key_argument() {
        let cli = parse(&[
            "put",
            "k",
            "v",
            "--ca-cert",
            "ca",
            "--cert",
            "c",
            "--key",
            "kf",
        ])
        .unwrap();
        assert_eq!(cli.security.key, Some("kf".into()));
        assert_eq!(cli.security.cert, Some("c".into()));
        let Command::Data(crate::data::DataCommand::Put { key, .. }) = cli.command else {
            panic!("not put");
        };
        assert_eq!(key, "k");
    }

    fn span_of(args: &[&str]) -> Result<(Vec<u8>, Vec<u8>), clap::Error> {
        let mut all = vec!["role", "grant", "r", "--access", "readwrite"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Command::Role(RoleCommand::Grant { span, .. }) => Ok(span.span()),
            _ => panic!("not role grant"),
        }
    }

    #[test]
    fn a_grant_names_exactly_one_span() {
        assert_eq!(
            span_of(&["--prefix", "a/"]).unwrap(),
            (b"a/".to_vec(), b"a0".to_vec())
        );
        assert_eq!(
            span_of(&["--start", "a", "--end", "c"]).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert_eq!(
            span_of(&["--start", "a"]).unwrap(),
            (b"a".to_vec(), Vec::new())
        );
        assert_eq!(span_of(&["--all"]).unwrap(), (Vec::new(), Vec::new()));
        for bad in [
            &[][..],
            &["--end", "c"],
            &["--prefix", "a", "--start", "b"],
            &["--prefix", "a", "--all"],
            &["--start", "a", "--all"],
        ] {
            assert!(span_of(bad).is_err(), "{bad:?}");
        }
    }
}
