//! The command line of SPEC.md. Each command returns an exit code; `main` only calls `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::{
    CheckpointCheck, SearchQuery, ValueHasher, display_replica, keygen, read_public_key, search,
    verify_logs,
};
use crate::cognito::{CognitoDirectory, DirectoryErrorKind, SchemaReader};
use crate::config::Settings;
use crate::input::Regions;
use crate::policy;
use crate::policy_source::{LoadError, load_policy};
use crate::report;
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
        /// Only parse and validate the config (every key and value), print the result,
        /// and exit 0 or 1; nothing is started and no file it names is opened.
        #[arg(long)]
        check_config: bool,
    },
    /// Check and test policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify and search the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Change events: resend them from the audit log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Resend the change events of the audit log from `--from` to its end, to one sink.
    /// The sink's cursor is not moved; consumers deduplicate by event id.
    Replay {
        #[arg(long)]
        config: PathBuf,
        /// The sink's name in `events.sinks`.
        #[arg(long)]
        sink: String,
        /// Where to start: `<replica>:<seq>`, as in an event's id.
        #[arg(long)]
        from: String,
        /// Print the events (one JSON line each) instead of sending them.
        #[arg(long)]
        dry_run: bool,
    },
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
    /// Print the least-privilege IAM policy (JSON) the gateway needs: the Cognito actions
    /// it calls, on the user pools the roles of the config's `policy_file` apply to.
    Iam {
        /// The gateway's config: its `policy_file`, and `cognito.region`,
        /// `cognito.allowed_regions` and `cognito.validate_schema`.
        #[arg(long)]
        config: PathBuf,
        /// The AWS account of the user pools (12 digits).
        #[arg(long)]
        account_id: String,
        /// The AWS partition: aws, aws-cn or aws-us-gov.
        #[arg(long, default_value = "aws")]
        partition: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of log files (one or more replicas', rotated files in any
    /// order); names the first bad record. With signed checkpoints, also fails when the
    /// log ends before a checkpointed record, when a checkpointed record was rewritten,
    /// or when two checkpoints disagree.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The checkpoint file (`audit.checkpoint.path`).
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The Ed25519 public key (PEM) the checkpoints are signed for.
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
    },
    /// Write a new Ed25519 key pair for signed checkpoints (PEM files; never overwrites).
    Keygen {
        /// Where the private key goes (mode 0600); give it to the gateway through the
        /// environment variable named by `audit.checkpoint.signing_key_env`.
        #[arg(long)]
        private_key: PathBuf,
        /// Where the public key goes; keep it where the verifier of the log keeps it.
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Print the records that match every filter, oldest first per replica, verifying
    /// each chain as it reads; warns (and exits 1) when a chain it read is broken.
    Search(SearchArgs),
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

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The log files: one or more replicas', rotated files included, in any order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    pool: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// A requested attribute name.
    #[arg(long)]
    attribute: Option<String>,
    /// A requested value, matched through its HMAC under the configured key (with
    /// --attribute: that attribute's value). Needs --config or the key's variable.
    #[arg(long)]
    value: Option<String>,
    /// The gateway's config, for the HMAC key's environment variable.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The environment variable holding the HMAC key, when no config is given.
    #[arg(long, default_value = "ATTRGATE_AUDIT_HMAC_KEY")]
    key_env: String,
    /// The caller's `sub`.
    #[arg(long)]
    caller: Option<String>,
    /// From this time on (RFC 3339, or a date: midnight UTC).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339, or a date).
    #[arg(long)]
    until: Option<String>,
    /// Print the matching records themselves, one JSON line each.
    #[arg(long)]
    json: bool,
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            check_config: true,
        } => check_config(&config),
        Command::Serve { config, .. } => serve(config).await,
        Command::Policy(PolicyCommand::Check { file }) => policy_check(&file),
        Command::Policy(PolicyCommand::Test { file, cases }) => policy_test(&file, &cases),
        Command::Policy(PolicyCommand::Lint { file, pool, config }) => {
            policy_lint(&file, &pool, &config).await
        }
        Command::Policy(PolicyCommand::Iam {
            config,
            account_id,
            partition,
        }) => policy_iam(&config, &account_id, &partition),
        Command::Audit(AuditCommand::Verify {
            files,
            checkpoints,
            public_key,
        }) => audit_verify(&files, checkpoints.as_deref(), public_key.as_deref()),
        Command::Audit(AuditCommand::Keygen {
            private_key,
            public_key,
        }) => match keygen(&private_key, &public_key) {
            Ok(()) => {
                println!(
                    "wrote {} (private, keep it secret) and {} (public)",
                    private_key.display(),
                    public_key.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Audit(AuditCommand::Search(args)) => audit_search(&args),
        Command::Audit(AuditCommand::Hash {
            value,
            config,
            key_env,
        }) => audit_hash(&value, config, key_env),
        Command::Events(EventsCommand::Replay {
            config,
            sink,
            from,
            dry_run,
        }) => events_replay(&config, &sink, &from, dry_run).await,
        Command::Openapi => {
            print!("{}", crate::http::openapi::document_json());
            ExitCode::SUCCESS
        }
    }
}

fn check_config(config: &std::path::Path) -> ExitCode {
    match Settings::load(config) {
        Ok(_) => {
            println!("{}: ok", config.display());
            ExitCode::SUCCESS
        }
        Err(error) => fail(&report::chain(&error)),
    }
}

async fn serve(config: PathBuf) -> ExitCode {
    crate::telemetry::init();
    let settings = match Settings::load(&config) {
        Ok(settings) => settings,
        Err(error) => return fail(&report::chain(&error)),
    };
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => return fail(&report::chain(&error)),
    };
    tracing::info!(port = application.port(), "attrgate listening");
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&report::chain(&error)),
    }
}

async fn events_replay(
    config: &std::path::Path,
    sink: &str,
    from: &str,
    dry_run: bool,
) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return fail(&report::chain(&error)),
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut stdout = std::io::stdout().lock();
    match crate::events::replay(
        &settings,
        &aws,
        &|name| std::env::var(name).ok(),
        sink,
        from,
        dry_run,
        &mut stdout,
    )
    .await
    {
        Ok(done) => {
            let verb = if dry_run { "would resend" } else { "resent" };
            eprintln!(
                "{verb} {} events ({} records read from {from}) to sink {sink}",
                done.events, done.records
            );
            ExitCode::SUCCESS
        }
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
            fail(&report::chain(&error));
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
        for denial in &result.denied {
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
        Err(error) => return fail(&report::chain(&error)),
    };
    let regions = Regions {
        fixed: settings.cognito.region.clone(),
        allowed: settings.cognito.allowed_regions.clone(),
    };
    let pool = match regions.pool(pool) {
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

fn policy_iam(config: &std::path::Path, account_id: &str, partition: &str) -> ExitCode {
    let (account, partition) = match (
        policy::AccountId::parse(account_id),
        policy::Partition::parse(partition),
    ) {
        (Ok(account), Ok(partition)) => (account, partition),
        (Err(error), _) | (_, Err(error)) => return fail(&error),
    };
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    let Some(policy) = load_policy_or_report(&settings.policy_file) else {
        return ExitCode::FAILURE;
    };
    let options = policy::IamOptions {
        account,
        partition,
        region: settings.cognito.region,
        allowed_regions: settings.cognito.allowed_regions,
        validate_schema: settings.cognito.validate_schema,
        event_buses: settings
            .events
            .sinks
            .iter()
            .filter_map(|sink| sink.eventbridge.as_ref())
            .map(|bus| policy::EventBus {
                name: bus.bus_name.clone(),
                region: bus.region.clone(),
            })
            .collect(),
    };
    let document = policy::iam_policy(&policy, &options);
    println!(
        "{}",
        serde_json::to_string_pretty(&document).expect("a JSON value serialises")
    );
    ExitCode::SUCCESS
}

fn audit_verify(
    files: &[PathBuf],
    checkpoints: Option<&std::path::Path>,
    public_key: Option<&std::path::Path>,
) -> ExitCode {
    let key = match public_key.map(read_public_key).transpose() {
        Ok(key) => key,
        Err(error) => return fail(&error),
    };
    let check = checkpoints
        .zip(key.as_ref())
        .map(|(path, key)| CheckpointCheck { path, key });
    let reports = match verify_logs(files, check.as_ref()) {
        Ok(reports) => reports,
        Err(error) => return fail(&error),
    };
    let mut total = 0;
    for report in &reports {
        total += report.records;
        println!(
            "replica {}: {} record(s) in {} file(s), last seq {}, chain intact",
            display_replica(&report.replica),
            report.records,
            report.files,
            report
                .last_seq
                .map_or_else(|| "-".to_owned(), |seq| seq.to_string())
        );
        if check.is_some() {
            let last = report
                .last_checkpoint
                .map_or_else(|| "none".to_owned(), |seq| format!("seq {seq}"));
            println!(
                "  {} checkpoint(s) verified, the last at {last}; {} record(s) after it not yet checkpointed",
                report.checkpoints,
                report.not_checkpointed()
            );
        }
    }
    println!("ok: {total} records, chain intact");
    ExitCode::SUCCESS
}

fn audit_search(args: &SearchArgs) -> ExitCode {
    let query = match search_query(args) {
        Ok(query) => query,
        Err(error) => return fail(&error),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let report = search(&args.files, &query, |record, seq| {
        use std::io::Write;
        let _ = if args.json {
            writeln!(out, "{record}")
        } else {
            writeln!(out, "{}", search_line(record, seq))
        };
    });
    drop(out);
    match report {
        Ok(report) => {
            eprintln!(
                "{} match(es) in {} record(s)",
                report.matches, report.records
            );
            for broken in &report.broken {
                eprintln!("attrgate: warning: {broken}");
            }
            if report.broken.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => fail(&error),
    }
}

fn search_query(args: &SearchArgs) -> Result<SearchQuery, String> {
    let value_hmac = match &args.value {
        None => None,
        Some(value) => {
            let var = match &args.config {
                Some(path) => {
                    Settings::load(path)
                        .map_err(|e| report::chain(&e))?
                        .audit
                        .hmac_key_env
                }
                None => args.key_env.clone(),
            };
            let hasher = ValueHasher::from_env_value(&var, std::env::var(&var).ok())
                .map_err(|e| report::chain(&e))?;
            Some(hasher.hash(value))
        }
    };
    Ok(SearchQuery {
        pool: args.pool.clone(),
        user: args.user.clone(),
        attribute: args.attribute.clone(),
        value_hmac,
        caller: args.caller.clone(),
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
    })
}

/// RFC 3339, or a date (`2026-11-20`, midnight UTC).
fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

/// One line per matching event: time, replica, caller, user, attributes, outcome, request id.
fn search_line(record: &serde_json::Value, seq: u64) -> String {
    let text = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let list = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(serde_json::Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    format!(
        "{time} replica={replica} seq={seq} event={event} caller={sub} roles=[{roles}] pool={pool} user={user} attributes=[{attributes}] outcome={outcome} request_id={request_id}",
        time = text("/time"),
        replica = text("/replica"),
        event = text("/event"),
        sub = text("/caller/sub"),
        roles = list("/caller/roles"),
        pool = text("/pool_id"),
        user = text("/username"),
        attributes = list("/attributes"),
        outcome = text("/outcome"),
        request_id = text("/request_id"),
    )
}

fn audit_hash(value: &str, config: Option<PathBuf>, key_env: String) -> ExitCode {
    let var = match config.map(|path| Settings::load(&path)) {
        Some(Ok(settings)) => settings.audit.hmac_key_env,
        Some(Err(error)) => return fail(&report::chain(&error)),
        None => key_env,
    };
    match ValueHasher::from_env_value(&var, std::env::var(&var).ok()) {
        Ok(hasher) => {
            println!("{}", hasher.hash(value));
            ExitCode::SUCCESS
        }
        Err(error) => fail(&report::chain(&error)),
    }
}
