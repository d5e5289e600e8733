//! The command line of SPEC.md. Each command returns an exit code; `main` only calls `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::{ValueHasher, verify_file};
use crate::cognito::{CognitoDirectory, DirectoryErrorKind, SchemaReader};
use crate::config::Settings;
use crate::input::PoolId;
use crate::policy;
use crate::policy_source::{LoadError, load_policy};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "attrgate",
    version,
    about = "Policy-enforcing gateway for Cognito user attributes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check and test policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify and search the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; exits 1 and names the line on any error.
    Check { file: PathBuf },
    /// Run table-driven cases against a policy; exits 1 on any failure.
    Test { file: PathBuf, cases: PathBuf },
    /// Check the grants against a pool's real schema (DescribeUserPool); exits 1 on any
    /// grant to an attribute the pool does not have or cannot change.
    Lint {
        file: PathBuf,
        /// The user pool id, e.g. us-east-1_AbC123.
        #[arg(long)]
        pool: String,
        /// The gateway's config: its `cognito` section says where Cognito is.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of one or more consecutive log files; names the first bad record.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the HMAC of a value under the configured key, to search the log for it.
    Hash {
        value: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// The environment variable holding the key, when no config is given.
        #[arg(long, default_value = "ATTRGATE_AUDIT_HMAC_KEY")]
        key_env: String,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Policy(PolicyCommand::Check { file }) => policy_check(&file),
        Command::Policy(PolicyCommand::Test { file, cases }) => policy_test(&file, &cases),
        Command::Policy(PolicyCommand::Lint { file, pool, config }) => {
            policy_lint(&file, &pool, &config).await
        }
        Command::Audit(AuditCommand::Verify { files }) => audit_verify(&files),
        Command::Audit(AuditCommand::Hash {
            value,
            config,
            key_env,
        }) => audit_hash(&value, config, key_env),
        Command::Openapi => {
            print!("{}", crate::openapi::document_json());
            ExitCode::SUCCESS
        }
    }
}

async fn serve(config: PathBuf) -> ExitCode {
    crate::telemetry::init();
    let settings = match Settings::load(&config) {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => return fail(&error),
    };
    tracing::info!(port = application.port(), "attrgate listening");
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("attrgate: {error}");
    ExitCode::FAILURE
}

fn policy_check(file: &std::path::Path) -> ExitCode {
    let Some(policy) = load_policy_or_report(file) else {
        return ExitCode::FAILURE;
    };
    print_warnings(file, &policy);
    println!(
        "{}: ok ({}, {} warning(s))",
        file.display(),
        policy.revision(),
        policy.warnings().len()
    );
    ExitCode::SUCCESS
}

/// Loads a policy file, or prints every error as `file:line:column: error: message`.
fn load_policy_or_report(file: &std::path::Path) -> Option<policy::Policy> {
    match load_policy(file) {
        Ok(policy) => Some(policy),
        Err(LoadError::Invalid { source, .. }) => {
            print_errors(file, &source);
            None
        }
        Err(error) => {
            fail(&error);
            None
        }
    }
}

fn print_errors(file: &std::path::Path, error: &policy::PolicyError) {
    let name = file.display().to_string();
    for diagnostic in &error.diagnostics {
        eprintln!("{}", diagnostic.in_file(&name, "error"));
    }
    eprintln!("{name}: {} error(s)", error.diagnostics.len());
}

fn print_warnings(file: &std::path::Path, policy: &policy::Policy) {
    let name = file.display().to_string();
    for warning in policy.warnings() {
        eprintln!("{}", warning.in_file(&name, "warning"));
    }
}

fn policy_test(file: &std::path::Path, cases_file: &std::path::Path) -> ExitCode {
    let Some(policy) = load_policy_or_report(file) else {
        return ExitCode::FAILURE;
    };
    print_warnings(file, &policy);
    let source = match std::fs::read_to_string(cases_file) {
        Ok(source) => source,
        Err(error) => {
            return fail(&format!(
                "failed to read case file {}: {error}",
                cases_file.display()
            ));
        }
    };
    let cases = match policy::parse_cases(&source) {
        Ok(cases) => cases,
        Err(error) => {
            print_errors(cases_file, &error);
            return ExitCode::FAILURE;
        }
    };
    let results = policy::run_cases(&policy, &cases);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    for result in &failed {
        let at = match result.line {
            Some(line) => format!("{}:{line}", cases_file.display()),
            None => cases_file.display().to_string(),
        };
        println!("FAIL {} ({at})", result.name);
        if let Some(message) = &result.message {
            println!("  {message}");
        }
        for denial in &result.decision.denied {
            println!(
                "  denied {} ({}): {}",
                denial.attribute, denial.code, denial.reason
            );
        }
    }
    println!(
        "{}: {} passed, {} failed",
        cases_file.display(),
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn policy_lint(file: &std::path::Path, pool: &str, config: &std::path::Path) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    let pool = match PoolId::parse(pool) {
        Ok(pool) => pool,
        Err(error) => return fail(&format!("--pool {pool}: {}", error.message)),
    };
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(error) => {
            return fail(&format!(
                "failed to read policy file {}: {error}",
                file.display()
            ));
        }
    };
    let compiled = match policy::Policy::parse(&source) {
        Ok(compiled) => compiled,
        Err(error) => {
            print_errors(file, &error);
            return ExitCode::FAILURE;
        }
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let directory = CognitoDirectory::new(aws, settings.cognito);
    let schema = match directory.describe_pool(&pool).await {
        Ok(schema) => schema,
        Err(error) if error.kind == DirectoryErrorKind::PoolNotFound => {
            return fail(&format!("pool {} does not exist", pool.as_str()));
        }
        Err(error) => {
            return fail(&format!(
                "DescribeUserPool for {} failed: {} ({:?})",
                pool.as_str(),
                error.code,
                error.kind
            ));
        }
    };
    let attributes = schema.effective_attributes();
    let attributes: Vec<(&str, bool)> = attributes
        .iter()
        .map(|attribute| (attribute.name.as_str(), attribute.mutable))
        .collect();
    let report = policy::lint(&compiled, pool.as_str(), &attributes);
    let name = file.display().to_string();
    let mut listing: Vec<(&policy::PolicyDiagnostic, &str)> = report
        .problems
        .iter()
        .map(|problem| (problem, "error"))
        .chain(report.notes.iter().map(|note| (note, "note")))
        .collect();
    listing.sort_by_key(|(item, _)| (item.line, item.column));
    for (item, severity) in listing {
        eprintln!("{}", item.in_file(&name, severity));
    }
    println!(
        "{name}: pool {}: {} attribute(s), {} problem(s), {} note(s)",
        pool.as_str(),
        attributes.len(),
        report.problems.len(),
        report.notes.len()
    );
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn audit_verify(files: &[PathBuf]) -> ExitCode {
    let mut start: Option<String> = None;
    let mut total = 0;
    for file in files {
        match verify_file(file, start.as_deref()) {
            Ok(summary) => {
                total += summary.records;
                start = Some(summary.last_hash);
            }
            Err(error) => return fail(&format!("{}: {error}", file.display())),
        }
    }
    println!("ok: {total} records, chain intact");
    ExitCode::SUCCESS
}

fn audit_hash(value: &str, config: Option<PathBuf>, key_env: String) -> ExitCode {
    let var = match config.map(|path| Settings::load(&path)) {
        Some(Ok(settings)) => settings.audit.hmac_key_env,
        Some(Err(error)) => return fail(&error),
        None => key_env,
    };
    match ValueHasher::from_env_value(&var, std::env::var(&var).ok()) {
        Ok(hasher) => {
            println!("{}", hasher.hash(value));
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}
