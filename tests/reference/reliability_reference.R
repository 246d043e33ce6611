# Reference values for alliance_lib.reliability: omega_hierarchical (psych::omega) and
# multilevel_omega (lavaan two-level CFA, Geldhof, Preacher & Zyphur 2014).
#
# Run from the repository root after `.venv/bin/python tests/reference/make_reliability_data.py`:
#   Rscript tests/reference/reliability_reference.R
# Reads tests/reference/fixtures/{wai_first_admin,wai_two_level,scale_items}.csv and writes
# tests/reference/fixtures/reliability_reference.json with the R, psych, GPArotation and lavaan
# versions used.
#
# Why lavaan for the multilevel omega: Geldhof et al. define within- and between-level omega from
# the loadings and residual variances of a two-level CFA, which is exactly what a lavaan
# `level: 1` / `level: 2` model estimates by ML. psych::multilevel.reliability (mlr) reports
# generalizability-theory coefficients (Shrout & Lane), a different estimand.

suppressPackageStartupMessages({
  library(psych)
  library(lavaan)
  library(jsonlite)
})

fx <- file.path("tests", "reference", "fixtures")
wai_items <- paste0("wai_sr_", 1:12)
scales <- list(total = 1:12, task = c(1, 2, 10, 12), bond = c(3, 5, 7, 9), goal = c(4, 6, 8, 11))

om_list <- function(o) {
  sl <- o$schmid$sl
  list(omega_h = o$omega_h, omega_total = o$omega.tot,
       g = unname(sl[, 1]), h2 = unname(sl[, "h2"]), u2 = unname(sl[, "u2"]),
       omega_group_total = unname(o$omega.group$total),
       omega_group_general = unname(o$omega.group$general),
       omega_group_group = unname(o$omega.group$group))
}

# ---- psych::omega, 3 group factors, WAI-SR first administration per client --------------
first <- read.csv(file.path(fx, "wai_first_admin.csv"))
o3 <- omega(first[, wai_items], nfactors = 3, fm = "ml", plot = FALSE)

# ---- psych::omega, 2 group factors (option = "equal"), the 9-item test scale ---------------
xb <- read.csv(file.path(fx, "scale_items.csv"))
xb[, c(2, 7)] <- 4 - xb[, c(2, 7)]
xb <- na.omit(xb)
o2 <- suppressMessages(omega(xb, nfactors = 2, fm = "ml", plot = FALSE))

# ---- lavaan two-level CFA, one factor per level ----------------------------------------
sess <- read.csv(file.path(fx, "wai_two_level.csv"))
two_level <- lapply(scales, function(idx) {
  it <- wai_items[idx]
  model <- paste0("level: 1\n fw =~ ", paste(it, collapse = " + "),
                  "\nlevel: 2\n fb =~ ", paste(it, collapse = " + "))
  fit <- sem(model, data = sess, cluster = "client_id", std.lv = TRUE)
  pe <- parameterEstimates(fit)
  lw <- pe$est[pe$op == "=~" & pe$lhs == "fw"]
  lb <- pe$est[pe$op == "=~" & pe$lhs == "fb"]
  res <- pe[pe$op == "~~" & pe$lhs == pe$rhs & pe$lhs %in% it, ]
  tw <- res$est[res$level == 1]
  tb <- res$est[res$level == 2]
  list(items = it, loglik = as.numeric(logLik(fit)), converged = lavInspect(fit, "converged"),
       loadings_within = lw, loadings_between = lb,
       residuals_within = tw, residuals_between = tb,
       omega_within = sum(lw)^2 / (sum(lw)^2 + sum(tw)),
       omega_between = sum(lb)^2 / (sum(lb)^2 + sum(tb)),
       n = lavInspect(fit, "nobs"), n_clients = lavInspect(fit, "nclusters"))
})

out <- list(
  versions = list(R = R.version.string, psych = as.character(packageVersion("psych")),
                  GPArotation = as.character(packageVersion("GPArotation")),
                  lavaan = as.character(packageVersion("lavaan"))),
  omega_wai_first = c(om_list(o3), n = nrow(first)),
  omega_scale_items = c(om_list(o2), n = nrow(xb)),
  two_level = two_level
)
write_json(out, file.path(fx, "reliability_reference.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("wrote", file.path(fx, "reliability_reference.json"), "\n")
