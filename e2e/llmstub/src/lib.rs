//! llmstub: a local stand-in for the model APIs coding agents call.
//!
//! It speaks Anthropic Messages (Claude Code and its ACP adapters), OpenAI
//! Responses (Codex), OpenAI Chat Completions (opencode) and Gemini
//! (Gemini CLI), streaming and not, and answers from a [`Script`]: rules
//! matched against the request's content ([`normalize`] reduces every API
//! to one shape), never against how many requests came before, since
//! agents make side calls of their own. `/_llmstub/script` swaps the script
//! at run time and `/_llmstub/requests` lists what arrived.
//!
//! The library exposes [`LlmStub`] (state and the axum router) so tests can
//! serve it in process; `main.rs` adds the CLI, the socket and signals.

mod anthropic;
mod chat;
mod gemini;
mod models;
pub mod normalize;
mod responses;
pub mod script;
mod server;

pub use script::{Script, ScriptError};
pub use server::{Config, LlmStub, LoggedRequest};
