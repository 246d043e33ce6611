# Reference values for alliance_lib.raters.rater_agreement(clustered=True):
#   * variance components of lmer(score ~ rater + (1 | client_id) + (1 | client_id:session))
#     on the paired ratings (lme4, REML), the fixed rater effect and its variance;
#   * ICC(A,1) and ICC(C,1) from those components (formulas written out below);
#   * Bland & Altman (2007) limits of agreement for repeated measurements where the true value
#     varies (section 5 of the paper), by hand from a one-way ANOVA of the differences on client
#     (stats::lm/anova, independent of alliance_lib's bincount algebra).
#
# Run from the repository root:  Rscript tests/reference/raters_reference.R
# Reads tests/reference/fixtures/rater_data.csv (made by psych_reference.R), writes
# tests/reference/fixtures/rater_clustered.csv (simulated here: 60 clients, 2-12 sessions, a
# client-level rater difference) and tests/reference/fixtures/raters_reference.json with the R
# and lme4 versions used.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

fx <- file.path("tests", "reference", "fixtures")
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
set.seed(20261201)

n_cl <- 60
sizes <- sample(2:12, n_cl, replace = TRUE)
client <- rep(sprintf("K%03d", 1:n_cl), sizes)
session <- unlist(lapply(sizes, seq_len))
lev <- rep(rnorm(n_cl, 3.6, 0.5), sizes) + rnorm(length(client), 0, 0.25)
bias <- rep(rnorm(n_cl, -0.3, 0.3), sizes)
sim <- rbind(
  data.frame(client_id = client, session = session, rater = "client",
             score = round(lev + rnorm(length(client), 0, 0.3), 3)),
  data.frame(client_id = client, session = session, rater = "therapist",
             score = round(lev + bias + rnorm(length(client), 0, 0.3), 3))
)
sim <- sim[order(sim$client_id, sim$session, sim$rater), ]
write.csv(sim, file.path(fx, "rater_clustered.csv"), row.names = FALSE)

reference <- function(long) {
  ok <- long[!is.na(long$score), ]
  wide <- reshape(ok, idvar = c("client_id", "session"), timevar = "rater", direction = "wide")
  wide <- wide[complete.cases(wide[, c("score.client", "score.therapist")]), ]
  paired <- merge(ok, wide[, c("client_id", "session")])
  paired$rater <- factor(paired$rater, levels = c("client", "therapist"))
  fit <- lmer(score ~ rater + (1 | client_id) + (1 | client_id:session), data = paired,
              REML = TRUE, control = lmerControl(optimizer = "bobyqa",
                                                 optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
  vc <- as.data.frame(VarCorr(fit))
  v_client <- vc$vcov[vc$grp == "client_id"]
  v_session <- vc$vcov[vc$grp == "client_id:session"]
  v_res <- vc$vcov[vc$grp == "Residual"]
  b <- unname(fixef(fit)[2])
  vb <- vcov(fit)[2, 2]
  v_rater <- max((b^2 - vb) / 2, 0)
  target <- v_client + v_session
  # Bland & Altman (2007): differences client - therapist, one-way ANOVA on client
  d <- wide$score.client - wide$score.therapist
  g <- factor(wide$client_id)
  a <- anova(lm(d ~ g))
  ms_b <- a["g", "Mean Sq"]
  ms_w <- a["Residuals", "Mean Sq"]
  m <- as.vector(table(g))
  N <- length(d)
  n <- length(m)
  divisor <- (N^2 - sum(m^2)) / ((n - 1) * N)
  var_b <- max((ms_b - ms_w) / divisor, 0)
  sd_t <- sqrt(var_b + ms_w)
  z <- qnorm(0.975)
  list(n_pairs = N, n_clients = n, v_client = v_client, v_session = v_session,
       v_residual = v_res, rater_effect = b, rater_effect_var = vb, v_rater = v_rater,
       icc_a = target / (target + v_rater + v_res), icc_c = target / (target + v_res),
       reml = as.numeric(REMLcrit(fit)), singular = isSingular(fit),
       ba_mean = mean(d), ba_sd_between = sqrt(var_b), ba_sd_within = sqrt(ms_w),
       ba_sd_total = sd_t, ba_loa_low = mean(d) - z * sd_t, ba_loa_high = mean(d) + z * sd_t)
}

rater_data <- read.csv(file.path(fx, "rater_data.csv"))
out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  rater_data = reference(rater_data),
  rater_clustered = reference(sim)
)
write_json(out, file.path(fx, "raters_reference.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("wrote", file.path(fx, "raters_reference.json"), "\n")
