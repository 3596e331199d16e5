"""The funding engine: pure domain rules and ledger, with no Flask, HTTP, SQL session or wiki inside."""
