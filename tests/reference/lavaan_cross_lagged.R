# lavaan reference for alliance_lib.fit_cross_lagged (run from the repository root after
# make_cross_lagged_data.py):  Rscript tests/reference/lavaan_cross_lagged.R
#
# RI-CLPM, LCM-SR and ML-SEM (lags equal over sessions) by FIML on the two data sets, with the
# syntax written here independently of alliance_lib (after Mulder & Hamaker's lavaan code and
# Allison, Williams & Moral-Benito 2017); the RI-CLPM with free and with stationary constraints
# and with lag-2 paths, and the ML-SEM with free lags, from the syntax alliance_lib writes. Output: fixtures/lavaan_cross_lagged.json.
suppressPackageStartupMessages({library(lavaan); library(jsonlite)})
fx <- "tests/reference/fixtures"
TT <- 8

riclpm_syntax <- function(TT, slopes = FALSE) {
  a <- paste0("a", 1:TT); y <- paste0("y", 1:TT)
  wa <- paste0("wa", 1:TT); wy <- paste0("wy", 1:TT)
  s <- c(
    paste("RIa =~", paste0("1*", a, collapse = " + ")),
    paste("RIy =~", paste0("1*", y, collapse = " + ")),
    paste0(wa, " =~ 1*", a), paste0(wy, " =~ 1*", y),
    paste0(a, " ~~ 0*", a), paste0(y, " ~~ 0*", y),
    paste0(wy[-1], " ~ py*", wy[-TT], " + beta*", wa[-TT]),
    paste0(wa[-1], " ~ pa*", wa[-TT], " + cay*", wy[-TT]),
    paste0(wa, " ~~ ", wy), paste0(wa, " ~~ ", wa), paste0(wy, " ~~ ", wy),
    "RIa ~~ RIa", "RIy ~~ RIy", "RIa ~~ RIy",
    "RIa ~~ 0*wa1 + 0*wy1", "RIy ~~ 0*wa1 + 0*wy1"
  )
  if (slopes) {
    ld <- 0:(TT - 1)
    s <- c(s,
      paste("Sa =~", paste0(ld, "*", a, collapse = " + ")),
      paste("Sy =~", paste0(ld, "*", y, collapse = " + ")),
      "Sa ~~ Sa", "Sy ~~ Sy", "Sa ~~ Sy", "Sa ~~ RIa + RIy", "Sy ~~ RIa + RIy",
      "Sa ~~ 0*wa1 + 0*wy1", "Sy ~~ 0*wa1 + 0*wy1", "Sa ~ 0*1", "Sy ~ 0*1"
    )
  }
  paste(s, collapse = "\n")
}

mlsem_syntax <- function(TT) {
  a <- paste0("a", 1:(TT - 1)); y <- paste0("y", 1:TT)
  s <- c(
    paste("alpha =~", paste0("1*", y[-1], collapse = " + ")),
    paste0(y[-1], " ~ beta*", a, " + py*", y[-TT]),
    "alpha ~~ alpha",
    paste("alpha ~~", paste(c(a, "y1"), collapse = " + ")),
    paste0(y[-1], " ~~ ", y[-1])
  )
  for (t in 2:(TT - 1)) s <- c(s, paste0(y[t], " ~~ ", paste(a[t:(TT - 1)], collapse = " + ")))
  ex <- c("y1", a)
  for (i in seq_along(ex)) s <- c(s, paste0(ex[i], " ~~ ", paste(ex[i:length(ex)], collapse = " + ")))
  paste(s, collapse = "\n")
}

to_wide <- function(long) {
  w <- reshape(long, idvar = "client_id", timevar = "session", direction = "wide", sep = "")
  names(w) <- sub("^alliance", "a", sub("^outcome", "y", names(w)))
  w[, c("client_id", paste0("a", 1:TT), paste0("y", 1:TT))]
}

# lavaan's optimiser is better conditioned when the variances are of similar size, so the outcome
# is analysed as y / 10 (as in ao-sim/fit_sem.R) and every estimate, SE and the log-likelihood are
# transformed back to the data metric here (exact: a linear reparametrisation).
SCALE <- 10
side <- function(v) ifelse(grepl("^(y|wy|RIy|Sy|alpha)", v), SCALE, 1)

fit_one <- function(syntax, w) {
  ycols <- grep("^y", names(w))
  w[ycols] <- w[ycols] / SCALE
  t0 <- proc.time()[["elapsed"]]
  warns <- character(0)
  fit <- withCallingHandlers(
    lavaan(syntax, data = w, missing = "ml", meanstructure = TRUE, int.ov.free = TRUE,
           int.lv.free = FALSE, fixed.x = FALSE),
    warning = function(wn) { warns <<- c(warns, conditionMessage(wn)); invokeRestart("muffleWarning") })
  secs <- proc.time()[["elapsed"]] - t0
  pe <- parameterEstimates(fit)
  if (!"label" %in% names(pe)) pe$label <- ""
  f <- ifelse(pe$op == "~", side(pe$lhs) / side(pe$rhs),
       ifelse(pe$op == "~~", side(pe$lhs) * side(pe$rhs),
       ifelse(pe$op == "~1", side(pe$lhs), 1)))
  pe$est <- pe$est * f
  pe$se <- pe$se * f
  fm <- fitMeasures(fit, c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
                           "baseline.chisq", "baseline.df", "cfi", "tli", "rmsea",
                           "rmsea.ci.lower", "rmsea.ci.upper", "srmr", "aic", "bic"))
  list(converged = lavInspect(fit, "converged"), seconds = secs, warnings = warns,
       npatterns = length(lavInspect(fit, "patterns")) %/% max(1, ncol(lavInspect(fit, "patterns"))), niter = lavInspect(fit, "iterations"), nobs = lavInspect(fit, "nobs"),
       parameters = pe[, c("lhs", "op", "rhs", "label", "est", "se")],
       fit = local({
         fm <- as.list(fm)
         shift <- sum(!is.na(as.matrix(w[ycols]))) * log(SCALE)
         for (k in c("logl", "unrestricted.logl")) fm[[k]] <- fm[[k]] - shift
         for (k in c("aic", "bic")) fm[[k]] <- fm[[k]] + 2 * shift
         fm
       }))
}

out <- list(versions = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                            jsonlite = as.character(packageVersion("jsonlite"))),
            options = "outcome analysed as y / 10 and transformed back; lavaan(missing='ml', meanstructure=TRUE, int.ov.free=TRUE, int.lv.free=FALSE, fixed.x=FALSE); observed-information SEs (default)",
            fits = list())
for (name in c("complete", "missing")) {
  long <- read.csv(file.path(fx, paste0("cross_lagged_", name, ".csv")))
  w <- to_wide(long)
  models <- list(riclpm = riclpm_syntax(TT), lcmsr = riclpm_syntax(TT, slopes = TRUE),
                 mlsem = mlsem_syntax(TT))
  for (m in c("riclpm_none", "riclpm_stationary", "riclpm_lag2", "mlsem_none")) {
    models[[m]] <- paste(readLines(file.path(fx, paste0("cross_lagged_syntax_", m, ".lav"))),
                         collapse = "\n")
  }
  for (m in names(models)) {
    key <- paste(name, m, sep = "/")
    out$fits[[key]] <- fit_one(models[[m]], w)
    cat(sprintf("%s: %.1f s, converged %s, logl %.4f\n", key, out$fits[[key]]$seconds,
                out$fits[[key]]$converged, out$fits[[key]]$fit$logl))
  }
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(fx, "lavaan_cross_lagged.json"))
