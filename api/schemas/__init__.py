"""Request and response models. Table models never leave the API: responses are built from
these, so a new column (a secret, say) cannot appear in a response by accident."""
