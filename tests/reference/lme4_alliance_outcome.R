# Reference values for alliance_lib.alliance_outcome, computed with R's lme4 + lmerTest.
#
# Run from the repository root (needs the project virtualenv for the data step):
#     Rscript tests/reference/lme4_alliance_outcome.R
#
# 1. Data are simulated in Python with alliance_lib.simulate.simulate_study(output="scores")
#    (fixed seeds; the snippet is below) and written as committed fixtures:
#      * alliance_outcome_sessions.csv   long table (client_id, therapist_id, session, alliance,
#                                        outcome), 150 clients / 12 therapists, with dropout, ~4 %
#                                        of sessions deleted (gaps on the session grid), some
#                                        alliance and outcome values missing, rows shuffled
#      * alliance_outcome_therapist.csv  sessions 1-3 of 220 clients / 40 therapists with
#                                        client-level columns pre (intake outcome) and post (last
#                                        observed outcome); therapist TH-01 keeps a single client
#      * alliance_outcome_therapist2.csv the same layout from another seed (singular REML fit)
# 2. Everything else is done here, independently of the Python code: the within/between
#    decomposition (person means, per-client lm() residuals for detrending), the lagged pairs
#    (merge on client and session + lag, so gaps are never bridged), the Baldwin et al. (2007)
#    client aggregation and (leave-one-out) therapist means, and the lmer() fits. Output:
#      * alliance_outcome_lagged_m1.csv, alliance_outcome_lagged_m2.csv   the analysed frames
#      * alliance_outcome_therapist_loo.csv  per-client frame with leave-one-out therapist means
#      * alliance_outcome_reference.json  per model: fixed effects (estimate, se, Satterthwaite df,
#        t, p from lmerTest), as.data.frame(VarCorr()), logLik, nobs, groups, isSingular; and the
#        R / lme4 / lmerTest / jsonlite versions.
# Generated with R 4.2.2, lme4 1.1.31, lmerTest 3.1.3, jsonlite 1.8.4 (Debian r-cran-*);
# the versions are also recorded in the JSON.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
sessions_csv <- file.path(out_dir, "alliance_outcome_sessions.csv")
therapist_csv <- file.path(out_dir, "alliance_outcome_therapist.csv")
therapist2_csv <- file.path(out_dir, "alliance_outcome_therapist2.csv")

# ---- 1. data from the Python simulator ----------------------------------------------------
py_code <- '
import sys
import numpy as np
import pandas as pd
from alliance_lib.simulate import simulate_study

sessions_csv, therapist_csv, therapist2_csv = sys.argv[1], sys.argv[2], sys.argv[3]
rng = np.random.default_rng(20261126)
d = simulate_study(n_therapists=12, n_clients=150, max_sessions=12, seed=4101, output="scores")
d = d[["client_id", "therapist_id", "session", "alliance", "outcome"]]
gap = (d["session"] >= 1).to_numpy() & (rng.random(len(d)) < 0.04)
d = d[~gap].copy()
d.loc[rng.random(len(d)) < 0.03, "alliance"] = np.nan
d.loc[(rng.random(len(d)) < 0.02) & (d["session"] > 0).to_numpy(), "outcome"] = np.nan
d = d.iloc[rng.permutation(len(d))]
d.to_csv(sessions_csv, index=False, lineterminator="\\n")

t = simulate_study(n_therapists=40, n_clients=220, max_sessions=12, seed=4102, output="scores")
pre = t[t["session"] == 0].set_index("client_id")["outcome"]
post = t.sort_values("session").groupby("client_id")["outcome"].last()
early = t[t["session"].between(1, 3)][["client_id", "therapist_id", "session", "alliance"]]
early = early.assign(pre=early["client_id"].map(pre), post=early["client_id"].map(post))
th01 = early["therapist_id"] == "TH-01"
first = early.loc[th01, "client_id"].iloc[0]
early = early[~th01 | (early["client_id"] == first)]
early.to_csv(therapist_csv, index=False, lineterminator="\\n")

t = simulate_study(n_therapists=40, n_clients=220, max_sessions=12, seed=4103, output="scores")
pre = t[t["session"] == 0].set_index("client_id")["outcome"]
post = t.sort_values("session").groupby("client_id")["outcome"].last()
early = t[t["session"].between(1, 3)][["client_id", "therapist_id", "session", "alliance"]]
early = early.assign(pre=early["client_id"].map(pre), post=early["client_id"].map(post))
early.to_csv(therapist2_csv, index=False, lineterminator="\\n")
'
py_file <- tempfile(fileext = ".py")
writeLines(py_code, py_file)
status <- system2(file.path(".venv", "bin", "python"),
                  c(py_file, sessions_csv, therapist_csv, therapist2_csv))
if (status != 0) stop("the Python data step failed")

# ---- 2. decomposition and lagging, done independently in R ---------------------------------
decompose <- function(d, var, detrend) {
  x <- d[[var]]
  pm <- ave(x, d$client_id, FUN = function(v) mean(v, na.rm = TRUE))
  cm <- tapply(x, d$client_id, function(v) mean(v, na.rm = TRUE))
  grand <- mean(cm, na.rm = TRUE)  # grand mean of client means
  between <- pm - grand
  if (!detrend) {
    within <- x - pm
  } else {
    within <- rep(NA_real_, length(x))
    for (cl in unique(d$client_id)) {
      idx <- which(d$client_id == cl & !is.na(x))
      if (length(unique(d$session[idx])) >= 2) {
        within[idx] <- resid(lm(x[idx] ~ d$session[idx]))
      }
    }
  }
  d[[paste0(var, "_between")]] <- between
  d[[paste0(var, "_within")]] <- within
  d
}

lagged <- function(d, lag, detrend) {
  d <- decompose(d, "alliance", detrend)
  d$outcome_prior <- d$outcome
  ahead <- data.frame(client_id = d$client_id, session = d$session - lag,
                      outcome_next = d$outcome)
  ahead <- ahead[!is.na(ahead$outcome_next), ]
  m <- merge(d, ahead, by = c("client_id", "session"))  # exact grid: gaps are not bridged
  m <- m[!is.na(m$alliance_within), ]
  m[order(m$client_id, m$session), ]
}

term_name <- function(x) ifelse(x == "(Intercept)", "Intercept", x)

describe <- function(fit, settings) {
  co <- summary(fit)$coefficients  # lmerTest: Satterthwaite df
  vc <- as.data.frame(VarCorr(fit))
  list(
    settings = settings,
    formula = deparse(formula(fit), width.cutoff = 500L),
    fixed = list(
      term = term_name(rownames(co)),
      estimate = unname(co[, "Estimate"]),
      se = unname(co[, "Std. Error"]),
      df = unname(co[, "df"]),
      t = unname(co[, "t value"]),
      p = unname(co[, "Pr(>|t|)"])
    ),
    random = list(
      grp = vc$grp,
      var1 = ifelse(is.na(vc$var1), NA, vc$var1),
      var2 = ifelse(is.na(vc$var2), NA, vc$var2),
      vcov = vc$vcov,
      sdcor = vc$sdcor
    ),
    loglik = as.numeric(logLik(fit)),
    nobs = nobs(fit),
    ngrps = as.list(ngrps(fit)),
    singular = isSingular(fit, tol = 1e-4)
  )
}

d <- read.csv(sessions_csv, colClasses = c(client_id = "character", therapist_id = "character"))
models <- list()

# m1: lag 1, person-mean centring, prior outcome, client intercept, REML. The prior outcome
# absorbs the clients' stable outcome level, so the client variance goes to the boundary
# (a singular fit, as lme4 reports it): a realistic consequence of the lagged-outcome model.
m1_data <- lagged(d, 1, FALSE)
m1_data <- m1_data[!is.na(m1_data$outcome_prior), ]
m1 <- lmer(outcome_next ~ alliance_within + alliance_between + outcome_prior + session +
             (1 | client_id), data = m1_data, REML = TRUE)
models$m1 <- describe(m1, list(lag = 1, detrend = FALSE, control_prior_outcome = TRUE,
                               therapist = FALSE, method = "reml"))

# m2: lag 1, detrended, no prior outcome, client and therapist intercepts, REML
m2_data <- lagged(d, 1, TRUE)
m2 <- lmer(outcome_next ~ alliance_within + alliance_between + session +
             (1 | client_id) + (1 | therapist_id), data = m2_data, REML = TRUE)
models$m2 <- describe(m2, list(lag = 1, detrend = TRUE, control_prior_outcome = FALSE,
                               therapist = TRUE, method = "reml"))

# m4: lag 1, detrended, prior outcome, client intercept, ML
m4_data <- lagged(d, 1, TRUE)
m4_data <- m4_data[!is.na(m4_data$outcome_prior), ]
m4 <- lmer(outcome_next ~ alliance_within + alliance_between + outcome_prior + session +
             (1 | client_id), data = m4_data, REML = FALSE)
models$m4 <- describe(m4, list(lag = 1, detrend = TRUE, control_prior_outcome = TRUE,
                               therapist = FALSE, method = "ml"))

# m3: lag 2, person-mean centring, no prior outcome, client intercept, ML
m3_data <- lagged(d, 2, FALSE)
m3 <- lmer(outcome_next ~ alliance_within + alliance_between + session + (1 | client_id),
           data = m3_data, REML = FALSE)
models$m3 <- describe(m3, list(lag = 2, detrend = FALSE, control_prior_outcome = FALSE,
                               therapist = FALSE, method = "ml"))

keep <- c("client_id", "therapist_id", "session", "alliance_within", "alliance_between",
          "outcome_prior", "outcome_next")
write.csv(m1_data[, keep], file.path(out_dir, "alliance_outcome_lagged_m1.csv"),
          row.names = FALSE)
write.csv(m2_data[, keep], file.path(out_dir, "alliance_outcome_lagged_m2.csv"),
          row.names = FALSE)

# ---- 3. Baldwin, Wampold & Imel (2007) ------------------------------------------------------
first_non_na <- function(v) v[!is.na(v)][1]
baldwin_frames <- function(path) {
  t <- read.csv(path, colClasses = c(client_id = "character", therapist_id = "character"))
  per <- data.frame(client_id = sort(unique(t$client_id)), stringsAsFactors = FALSE)
  per$therapist_id <- tapply(t$therapist_id, t$client_id, first_non_na)[per$client_id]
  per$alliance <- tapply(t$alliance, t$client_id, function(v) mean(v, na.rm = TRUE))[per$client_id]
  per$n_alliance <- tapply(t$alliance, t$client_id, function(v) sum(!is.na(v)))[per$client_id]
  per$pre <- tapply(t$pre, t$client_id, first_non_na)[per$client_id]
  per$post <- tapply(t$post, t$client_id, first_non_na)[per$client_id]
  per <- per[complete.cases(per), ]
  th_sum <- ave(per$alliance, per$therapist_id, FUN = sum)
  th_n <- ave(per$alliance, per$therapist_id, FUN = length)
  plain <- per
  plain$alliance_therapist_mean <- th_sum / th_n
  plain$alliance_within_therapist <- plain$alliance - plain$alliance_therapist_mean
  loo <- per[th_n > 1, ]
  loo$alliance_therapist_mean <- ((th_sum - per$alliance) / (th_n - 1))[th_n > 1]
  loo$alliance_within_therapist <- loo$alliance - loo$alliance_therapist_mean
  list(plain = plain, loo = loo)
}
baldwin_fit <- function(per) {
  lmer(post ~ pre + alliance_within_therapist + alliance_therapist_mean + (1 | therapist_id),
       data = per, REML = TRUE)
}

# t1/t2: REML optimum in the interior (therapist SD about 4.7)
b1 <- baldwin_frames(therapist_csv)
models$t1 <- describe(baldwin_fit(b1$plain), list(leave_one_out = FALSE, method = "reml"))
models$t2 <- describe(baldwin_fit(b1$loo), list(leave_one_out = TRUE, method = "reml"))
write.csv(b1$loo, file.path(out_dir, "alliance_outcome_therapist_loo.csv"), row.names = FALSE)

# t3/t4: the therapist variance is estimated at zero (singular fit)
b2 <- baldwin_frames(therapist2_csv)
models$t3 <- describe(baldwin_fit(b2$plain), list(leave_one_out = FALSE, method = "reml"))
models$t4 <- describe(baldwin_fit(b2$loo), list(leave_one_out = TRUE, method = "reml"))

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  jsonlite = as.character(packageVersion("jsonlite"))
)
writeLines(
  toJSON(list(versions = versions, models = models), auto_unbox = TRUE, digits = NA,
         pretty = TRUE, na = "null"),
  file.path(out_dir, "alliance_outcome_reference.json")
)
cat("wrote alliance_outcome_* fixtures to", out_dir, "\n")
