//! Accounts and the pairs made from them: [`discovery`] finds an account's services and
//! collections, [`mapping`] keeps "all collections" of an account paired (one folder per
//! collection), [`pairs`] holds the rules of making and removing pairs that both faces share.

pub mod discovery;
pub mod mapping;
pub mod pairs;
