//! A [`ChallengeMinter`] that signs in-process through the GET executor's own code: for tests
//! and single-process uses. The response function instead asks the challenge function (it
//! holds no signing permission).

use crate::error::CoreError;
use crate::model::Outcome;
use crate::ports::{ChallengeMinter, ChallengeSigner, Store};
use crate::settings::Env;
use crate::stage::executor_get;

/// Mints through the GET executor's own code with a signer at hand (tests and single-process
/// uses; the response function asks the challenge function instead).
pub struct SigningMinter<'a, S, K> {
    pub store: &'a S,
    pub signer: &'a K,
    pub env: &'a Env<'a>,
}

impl<S: Store, K: ChallengeSigner> ChallengeMinter for SigningMinter<'_, S, K> {
    async fn new_challenge(&self, plan_id: &str) -> Result<Outcome, CoreError> {
        executor_get(self.store, self.signer, self.env, plan_id, None).await
    }
}
