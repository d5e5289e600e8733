//! attrgate's entry point: parse the command line and run it.
#![forbid(unsafe_code)]

use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    attrgate::cli::run(attrgate::cli::Cli::parse()).await
}
