DROP TABLE IF EXISTS ace_error_patterns;
DROP TABLE IF EXISTS ace_errors;
