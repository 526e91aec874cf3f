//! SOQL: lexer, recursive-descent parser, evaluator. OWNER: the data-layer helper.
