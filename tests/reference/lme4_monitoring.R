# Reference values for alliance_lib.monitoring: expected treatment response curves.
#
# Run from the repository root after `python tests/reference/make_monitoring_data.py`:
#     Rscript tests/reference/lme4_monitoring.R
# Writes tests/reference/fixtures/lme4_monitoring.json. The model is Finch et al.'s (2001): outcome
# after intake on session, the (centred) intake score and their interaction, correlated client
# intercepts and slopes and a therapist intercept (lme4, REML). From the fit, computed here with
# plain matrix algebra (not with alliance_lib's formulas):
#   * the predictive mean and SD of a new client of a new therapist on a grid of intake x session,
#     sd^2 = z' G z + sigma_t^2 + sigma^2 + x' V x;
#   * the posterior predictive mean and SD of one client's score at session 12 given their
#     sessions 1..k (k = 1, 2, 3), by conditioning the joint normal of (y_1..y_k, y_12).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

fx <- "tests/reference/fixtures"
d <- read.csv(file.path(fx, "monitoring_etr.csv"), colClasses = c(client_id = "character",
                                                                  therapist_id = "character"))
intake <- d[d$session == 0, c("client_id", "outcome")]
names(intake)[2] <- "intake"
post <- merge(d[d$session > 0, ], intake, by = "client_id")
imean <- mean(intake$intake[intake$client_id %in% unique(post$client_id)])
post$c <- post$intake - imean
post$t <- post$session
m <- lmer(outcome ~ t * c + (t | client_id) + (1 | therapist_id), data = post, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10)))

beta <- fixef(m)
V <- as.matrix(vcov(m))
vc <- VarCorr(m)
G <- as.matrix(vc$client_id)
s2t <- as.numeric(vc$therapist_id)
s2 <- sigma(m)^2

grid <- expand.grid(intake = c(60, 80, 100), session = c(1, 4, 12))
X <- cbind(1, grid$session, grid$intake - imean, grid$session * (grid$intake - imean))
Z <- cbind(1, grid$session)
grid$mean <- as.numeric(X %*% beta)
grid$sd <- sqrt(rowSums((Z %*% G) * Z) + s2t + s2 + rowSums((X %*% V) * X))

# one client's posterior predictive of the session-12 score from sessions 1..k
cid <- post$client_id[which(table(post$client_id)[post$client_id] >= 12)[1]]
one <- post[post$client_id == cid, ]
one <- one[order(one$session), ]
cond <- list()
for (k in 1:3) {
  s <- c(one$session[1:k], 12)
  Xs <- cbind(1, s, one$c[1], s * one$c[1])
  Zs <- cbind(1, s)
  S <- Zs %*% G %*% t(Zs) + s2t + diag(s2, length(s))
  mu <- as.numeric(Xs %*% beta)
  i <- 1:k
  h <- k + 1
  w <- S[h, i, drop = FALSE] %*% solve(S[i, i, drop = FALSE])
  cm <- mu[h] + as.numeric(w %*% (one$outcome[i] - mu[i]))
  cv <- S[h, h] - as.numeric(w %*% S[i, h, drop = FALSE])
  # add the estimation variance of the fixed effects at session 12 (as alliance_lib does)
  x12 <- Xs[h, ]
  cond[[k]] <- list(k = k, mean = cm, sd = sqrt(cv + as.numeric(t(x12) %*% V %*% x12)))
}

out <- list(
  intake_mean = imean,
  fixed = as.list(beta),
  G = G,
  var_therapist = s2t,
  sigma2 = s2,
  grid = grid,
  client = cid,
  conditional = cond,
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  jsonlite = as.character(packageVersion("jsonlite")))
)
write_json(out, file.path(fx, "lme4_monitoring.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
