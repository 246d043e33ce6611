# Reference for alliance_lib.early_alliance_outcome: the per-client table is built here in base R
# from the demo session table (tests/reference/fixtures/demo_sessions.csv, made by
# make_demo_sessions.py), independently of the Python code, then fitted with stats::lm.
# Run from the repository root: Rscript tests/reference/lm_early_alliance.R
d <- read.csv("tests/reference/fixtures/demo_sessions.csv", colClasses = c(client_id = "character"))
d <- d[order(d$client_id, d$session), ]
out <- list()
for (early in c(3, 5)) {
  a <- d[d$session == early & !is.na(d$alliance), c("client_id", "alliance")]
  names(a)[2] <- "alliance_early"
  i <- d[d$session == 0 & !is.na(d$outcome), c("client_id", "outcome")]
  names(i)[2] <- "outcome_intake"
  u <- d[d$session > 0 & d$session <= early & !is.na(d$outcome), c("client_id", "session", "outcome")]
  u <- u[!duplicated(u$client_id, fromLast = TRUE), c("client_id", "outcome")]
  names(u)[2] <- "outcome_early"
  l <- d[d$session > early & !is.na(d$outcome), c("client_id", "session", "outcome")]
  l <- l[!duplicated(l$client_id, fromLast = TRUE), c("client_id", "outcome")]
  names(l)[2] <- "outcome_later"
  m <- Reduce(function(x, y) merge(x, y, by = "client_id"), list(a, i, u, l))
  m$outcome_change_early <- m$outcome_early - m$outcome_intake
  fit <- lm(outcome_later ~ alliance_early + outcome_intake + outcome_change_early, data = m)
  s <- summary(fit)$coefficients
  ci <- confint(fit, level = 0.95)
  out[[length(out) + 1]] <- data.frame(
    early_session = early, term = c("Intercept", rownames(s)[-1]), estimate = s[, 1],
    se = s[, 2], t = s[, 3], p = s[, 4], ci_low = ci[, 1], ci_high = ci[, 2],
    nobs = nrow(m), r2 = summary(fit)$r.squared, row.names = NULL)
}
res <- do.call(rbind, out)
res$r_version <- paste(R.version$major, R.version$minor, sep = ".")
write.csv(res, "tests/reference/fixtures/lm_early_alliance.csv", row.names = FALSE)
