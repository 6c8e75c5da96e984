"""The steps of one reconcile pass, one module each, in the order the loop (`engine/reconciling.py`) runs them:

    observe       the input validated and rendered; rows, probe states, snapshots, stored statuses read once
    plan          desired rows against observed rows (the pure `engine/planning.py`); a dry run ends here
    credentials   before apply: rotated Secrets verified, deleted servers' OAuth clients released (network);
                  after apply: OAuth tokens minted, clients registered (network + short transactions)
    apply         the plan in one transaction (and the statuses that commit with it); the probe jobs due
    probe         the MCP servers probed, each result handed on as it arrives (network, async)
    report        probe results and statuses in one transaction

`passing` holds the pass itself and the two objects a driver injects (`Scope`, `StatusSink`); `scopes` and
`sinks` hold the CLI's and the operator's.
"""
