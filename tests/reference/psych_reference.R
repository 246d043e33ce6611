# Reference values for alliance_lib.reliability and alliance_lib.raters, computed with R's psych.
#
# Run from the repository root:
#     Rscript tests/reference/psych_reference.R
# It writes, under tests/reference/fixtures/:
#   * alpha_items.csv          8 Likert items (1-5), 150 rows, complete
#   * alpha_items_missing.csv  the same items with about 7% of cells missing (no all-missing rows)
#   * scale_items.csv          9 items (0-4), items 2 and 7 negatively keyed, 10 all-missing rows
#                              ("not administered") and scattered missing cells
#   * rater_data.csv           long table: client_id, session, rater, score (client and therapist)
#   * psych_reference.json     every reference number, with the R and psych versions used
#                              (also psych::ICC of the 6-pair worked example in raters.py)
# Data are generated here with a fixed seed (R >= 3.6 sampling), so the CSVs and the JSON always agree.
# Generated with R 4.2.2 and psych 2.2.9 (Debian r-cran-psych); versions are also recorded in the JSON.

suppressPackageStartupMessages({
  library(psych)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
set.seed(20261126)

likert <- function(loadings, n, lo, hi) {
  f <- rnorm(n)
  k <- length(loadings)
  e <- matrix(rnorm(n * k), n, k)
  z <- outer(f, loadings) + e %*% diag(sqrt(1 - loadings^2))
  mid <- (lo + hi) / 2
  x <- round(mid + 1.1 * z)
  x[x < lo] <- lo
  x[x > hi] <- hi
  x
}

# ---- A: alpha / omega items -------------------------------------------------------------
xa <- likert(c(0.8, 0.7, 0.75, 0.6, 0.5, 0.85, 0.4, 0.65), 150, 1, 5)
colnames(xa) <- paste0("item_", 1:8)
xa <- as.data.frame(xa)
xm <- xa
miss <- matrix(runif(nrow(xm) * ncol(xm)) < 0.07, nrow(xm))
xm[miss] <- NA
# keep every row with at least one answered item (psych counts all rows in n for the Feldt CI)
stopifnot(all(rowSums(!is.na(xm)) > 0))
write.csv(xa, file.path(out_dir, "alpha_items.csv"), row.names = FALSE)
write.csv(xm, file.path(out_dir, "alpha_items_missing.csv"), row.names = FALSE, na = "")

alpha_block <- function(x, use) {
  a <- suppressWarnings(psych::alpha(x, use = use, warnings = FALSE))
  list(
    raw_alpha = a$total$raw_alpha,
    std_alpha = a$total$std.alpha,
    average_r = a$total$average_r,
    nsub = nrow(x),
    feldt_lower = a$feldt$lower.ci[[1]],
    feldt_upper = a$feldt$upper.ci[[1]],
    alpha_drop = a$alpha.drop$raw_alpha,
    std_alpha_drop = a$alpha.drop$std.alpha,
    r_drop = a$item.stats$r.drop,
    raw_r = a$item.stats$raw.r,
    item_n = a$item.stats$n,
    items = colnames(x)
  )
}

omega_block <- function(x, use) {
  f <- psych::fa(x, nfactors = 1, fm = "ml", use = use, rotate = "none", warnings = FALSE)
  l <- as.numeric(f$loadings[, 1])
  h2 <- as.numeric(f$communality)
  # omega total on the correlation scale: (sum l)^2 / ((sum l)^2 + sum(1 - h2))
  omega_std <- sum(l)^2 / (sum(l)^2 + sum(1 - h2))
  # the same one-factor model on the raw (covariance) scale: ML factor analysis is scale
  # equivariant, so raw loadings are l * sd and raw uniquenesses (1 - h2) * var
  sds <- apply(x, 2, sd, na.rm = TRUE)
  if (use == "complete.obs") sds <- apply(na.omit(x), 2, sd)
  lam <- l * sds
  psi <- (1 - h2) * sds^2
  omega_raw <- sum(lam)^2 / (sum(lam)^2 + sum(psi))
  list(loadings = l, h2 = h2, omega_std = omega_std, omega_raw = omega_raw)
}

res_a <- list(
  complete = c(alpha_block(xa, "complete.obs"), list(omega = omega_block(xa, "complete.obs"))),
  pairwise = c(alpha_block(xm, "pairwise"), list(omega = omega_block(xm, "pairwise"))),
  listwise = alpha_block(xm, "complete.obs")
)
# psych's Feldt CI uses nrow(x) even with use = "complete.obs"; alliance_lib uses the number of
# complete cases, so the listwise reference CI is psych::alpha.ci at that n.
n_cc <- sum(complete.cases(xm))
ci_cc <- psych::alpha.ci(res_a$listwise$raw_alpha, n_cc, ncol(xm))
res_a$listwise$n_complete <- n_cc
res_a$listwise$feldt_lower_ncomplete <- ci_cc$lower.ci[[1]]
res_a$listwise$feldt_upper_ncomplete <- ci_cc$upper.ci[[1]]
# the same CI straight from psych::alpha on the complete cases
a_cc <- psych::alpha(na.omit(xm), warnings = FALSE)
res_a$listwise$feldt_lower_na_omit <- a_cc$feldt$lower.ci[[1]]
res_a$listwise$feldt_upper_na_omit <- a_cc$feldt$upper.ci[[1]]
res_a$listwise$omega <- omega_block(xm, "complete.obs")
# 90% Feldt interval (alpha.ci's p.val argument) for the complete data
ci90 <- psych::alpha.ci(res_a$complete$raw_alpha, nrow(xa), ncol(xa), p.val = 0.10)
res_a$complete$feldt90_lower <- ci90$lower.ci[[1]]
res_a$complete$feldt90_upper <- ci90$upper.ci[[1]]

# ---- B: a keyed multi-scale instrument ------------------------------------------------
load_b <- c(0.7, -0.6, 0.8, 0.65, 0.55, 0.75, -0.7, 0.6, 0.8)
xb <- likert(load_b, 120, 0, 4)
xb[matrix(runif(length(xb)) < 0.03, nrow(xb))] <- NA
xb <- rbind(xb, matrix(NA, 10, 9))
colnames(xb) <- paste0("tst_", 1:9)
xb <- as.data.frame(xb)
write.csv(xb, file.path(out_dir, "scale_items.csv"), row.names = FALSE, na = "")
keyed <- xb
keyed[, c(2, 7)] <- 4 - keyed[, c(2, 7)]  # scale min 0 + max 4 - x
keyed <- keyed[rowSums(!is.na(keyed)) > 0, ]
scales <- list(total = 1:9, a = 1:5, b = 6:9)
res_b <- lapply(scales, function(idx) {
  x <- keyed[, idx]
  a <- psych::alpha(x, use = "complete.obs", warnings = FALSE)
  n <- sum(complete.cases(x))
  ci <- psych::alpha.ci(a$total$raw_alpha, n, ncol(x))
  om <- omega_block(x, "complete.obs")
  list(items = colnames(x), n = n, raw_alpha = a$total$raw_alpha, std_alpha = a$total$std.alpha,
       feldt_lower = ci$lower.ci[[1]], feldt_upper = ci$upper.ci[[1]],
       omega_std = om$omega_std, omega_raw = om$omega_raw)
})
# check.keys-free alternative: psych::alpha with keys gives the same raw alpha as reversing by hand
res_b$total$raw_alpha_psych_keys <- psych::alpha(
  xb[rowSums(!is.na(xb)) > 0, ], keys = c("tst_2", "tst_7"), use = "complete.obs",
  warnings = FALSE)$total$raw_alpha

# ---- C: client vs therapist ratings ---------------------------------------------------
n_cl <- 30
sess <- 1:8
ids <- sprintf("C%03d", 1:n_cl)
b0 <- rnorm(n_cl, 3.6, 0.5)
b1 <- rnorm(n_cl, 0.05, 0.06)
bias_t <- -0.25
grid <- expand.grid(session = sess, client = seq_len(n_cl))
true <- b0[grid$client] + b1[grid$client] * grid$session
cl_score <- true + rnorm(nrow(grid), 0, 0.25)
th_slope_noise <- rnorm(n_cl, 0, 0.03)
th_score <- true + bias_t + th_slope_noise[grid$client] * grid$session + rnorm(nrow(grid), 0, 0.3)
long <- rbind(
  data.frame(client_id = ids[grid$client], session = grid$session, rater = "client",
             score = round(cl_score, 3)),
  data.frame(client_id = ids[grid$client], session = grid$session, rater = "therapist",
             score = round(th_score, 3))
)
drop <- runif(nrow(long)) < 0.12
long <- long[!drop, ]
# one client with a single session and one with a therapist row only (no slope / no pair)
long <- long[!(long$client_id == "C030" & long$session > 1), ]
long <- long[!(long$client_id == "C029" & long$rater == "client" & long$session > 1), ]
long$score[sample(nrow(long), 4)] <- NA  # missing scores are ignored
long <- long[order(long$client_id, long$session, long$rater), ]
write.csv(long, file.path(out_dir, "rater_data.csv"), row.names = FALSE, na = "")

ok <- long[!is.na(long$score), ]
wide <- reshape(ok, idvar = c("client_id", "session"), timevar = "rater", direction = "wide")
wide <- wide[complete.cases(wide[, c("score.client", "score.therapist")]), ]
wide <- wide[order(wide$client_id, wide$session), ]
icc <- psych::ICC(wide[, c("score.client", "score.therapist")], lmer = FALSE)$results
d <- wide$score.client - wide$score.therapist
n_p <- length(d)
z <- qnorm(0.975)
tq <- qt(0.975, n_p - 1)
se_loa <- sqrt(3 * var(d) / n_p)  # Bland & Altman (1986) approximate SE of a limit of agreement
loa_lo <- mean(d) - z * sd(d)
loa_hi <- mean(d) + z * sd(d)
slope <- function(df, col) {
  sapply(split(df, df$client_id), function(g) {
    if (length(unique(g$session)) < 2) return(NA_real_)
    unname(coef(lm(g[[col]] ~ g$session))[2])
  })
}
s_c <- slope(wide, "score.client")
s_t <- slope(wide, "score.therapist")
keep <- !is.na(s_c) & !is.na(s_t)
ct <- cor.test(s_c[keep], s_t[keep])
res_c <- list(
  n_pairs = n_p,
  n_clients = length(unique(wide$client_id)),
  icc2 = icc["Single_random_raters", "ICC"],
  icc2_lower = icc["Single_random_raters", "lower bound"],
  icc2_upper = icc["Single_random_raters", "upper bound"],
  icc3 = icc["Single_fixed_raters", "ICC"],
  icc3_lower = icc["Single_fixed_raters", "lower bound"],
  icc3_upper = icc["Single_fixed_raters", "upper bound"],
  F = icc["Single_random_raters", "F"],
  df1 = icc["Single_random_raters", "df1"],
  df2 = icc["Single_random_raters", "df2"],
  p = icc["Single_random_raters", "p"],
  mean_diff = mean(d), sd_diff = sd(d),
  mean_diff_lower = mean(d) - tq * sd(d) / sqrt(n_p),
  mean_diff_upper = mean(d) + tq * sd(d) / sqrt(n_p),
  loa_low = loa_lo, loa_high = loa_hi,
  loa_low_lower = loa_lo - tq * se_loa, loa_low_upper = loa_lo + tq * se_loa,
  loa_high_lower = loa_hi - tq * se_loa, loa_high_upper = loa_hi + tq * se_loa,
  slope_clients = names(s_c)[keep],
  slope_client = unname(s_c[keep]), slope_therapist = unname(s_t[keep]),
  slope_r = unname(ct$estimate),
  slope_r_lower = ct$conf.int[1], slope_r_upper = ct$conf.int[2],
  slope_p = ct$p.value
)

# ---- D: the tiny worked example of rater_agreement's docstring ----------------------------
tiny <- cbind(client = c(4.0, 4.2, 4.5, 3.0, 3.1, 3.6), therapist = c(3.5, 3.9, 4.1, 3.2, 3.0, 3.3))
icc_t <- psych::ICC(tiny, lmer = FALSE)$results
res_d <- list(
  icc2 = icc_t["Single_random_raters", "ICC"],
  icc2_lower = icc_t["Single_random_raters", "lower bound"],
  icc2_upper = icc_t["Single_random_raters", "upper bound"],
  icc3 = icc_t["Single_fixed_raters", "ICC"],
  icc3_lower = icc_t["Single_fixed_raters", "lower bound"],
  icc3_upper = icc_t["Single_fixed_raters", "upper bound"],
  F = icc_t["Single_fixed_raters", "F"],
  p = icc_t["Single_fixed_raters", "p"]
)

out <- list(
  versions = list(R = R.version.string, psych = as.character(packageVersion("psych")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  alpha_items = res_a,
  scale_items = res_b,
  raters = res_c,
  tiny_raters = res_d
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           file.path(out_dir, "psych_reference.json"))
cat("wrote", out_dir, "\n")
